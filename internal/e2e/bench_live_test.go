package e2e

import (
	"fmt"

	"golang.org/x/sys/unix"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

// BenchmarkLiveExec: the latency of `loftd exec -- true` into a running
// VM, against `loftd -- true` (a fresh VM) and `podman exec` into a
// running container on the host, measured in the same iterations. Each is
// reported in ms; the ratios are what to compare across machines.
func BenchmarkLiveExec(b *testing.B) {
	w := benchWorld(b)
	podman := testenv.RequireCommand(b, "podman", "podman")
	if c := w.cmd("-d"); true {
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("loftd -d: %v\n%s", err, out)
		}
	}
	b.Cleanup(func() { _ = w.subCmd("kill", w.workspace).Run() })

	// A busybox container from a local image: no registry here. No
	// cgroups: crun refuses this machine's hybrid layout, and a baseline
	// exec needs none.
	// podman names an oci: image after its path, which must be lowercase.
	tmp, err := os.MkdirTemp("", "loftd-bench-bb-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(tmp) })
	layout := filepath.Join(tmp, "layout")
	rootfstest.Build(b, rootfstest.Spec{Dir: layout, Tag: "latest", NoDefaults: true, Files: []rootfstest.File{
		{Path: "/bin", Mode: os.ModeDir | 0o755},
		{Path: "/bin/busybox", Mode: 0o755, HostPath: "/bin/busybox"},
		{Path: "/bin/sh", Link: "busybox"},
		{Path: "/bin/sleep", Link: "busybox"},
		{Path: "/bin/true", Link: "busybox"},
	}})
	store := b.TempDir()
	unshare := testenv.RequireCommand(b, "unshare", "util-linux")
	// crun refuses this machine's hybrid cgroup layout (a v2 hierarchy
	// beside the v1 controllers): each podman runs in a mount namespace
	// without /sys/fs/cgroup/unified, as kube_test does. That costs the
	// baseline an unshare and a sh (about a millisecond).
	pm := func(args ...string) *exec.Cmd {
		return exec.Command(unshare, append([]string{"-m", "sh", "-c", `umount -l /sys/fs/cgroup/unified 2>/dev/null; exec "$@"`, "sh", podman, "--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"),
			"--cgroup-manager", "cgroupfs", "--events-backend", "file"}, args...)...)
	}
	if out, err := pm("run", "-d", "--name", "bench", "--network", "none", "--cgroups", "disabled", "--ulimit", ulimit("nofile", unix.RLIMIT_NOFILE), "--ulimit", ulimit("nproc", unix.RLIMIT_NPROC), "oci:"+layout+":latest", "sleep", "100000").CombinedOutput(); err != nil {
		b.Fatalf("podman run (a host podman container, the baseline): %v\n%s", err, out)
	}
	b.Cleanup(func() { _ = pm("system", "reset", "-f").Run() }) // the container, its mounts, the store

	run := func(what string, c *exec.Cmd) time.Duration {
		start := time.Now()
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", what, err, out)
		}
		return time.Since(start)
	}
	var execT, freshT, podT time.Duration
	n := 0
	for b.Loop() {
		execT += run("loftd exec -- true", w.subCmd("exec", "--workspace", w.workspace, "--", "true"))
		podT += run("podman exec", pm("exec", "bench", "true"))
		n++
	}
	// A fresh VM: a second workspace, as `loftd -- true` in a project with no VM.
	fresh := &world{t: b, state: w.state, workspace: b.TempDir(), root: w.root}
	for range n {
		freshT += run("loftd -- true", fresh.cmd("--", "true"))
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
	b.ReportMetric(ms(execT), "exec-ms")
	b.ReportMetric(ms(freshT), "fresh-ms")
	b.ReportMetric(ms(podT), "podman-exec-ms")
	b.ReportMetric(float64(freshT)/float64(execT), "fresh/exec")
	b.ReportMetric(float64(execT)/float64(podT), "exec/podman")
}

// ulimit is Podman's --ulimit for resource r at this process's hard limit:
// Podman's defaults ask for more than this machine lets a process raise.
func ulimit(name string, r int) string {
	var l unix.Rlimit
	if err := unix.Getrlimit(r, &l); err != nil {
		return name + "=1024:1024"
	}
	n := l.Max
	if r == unix.RLIMIT_NPROC {
		n = min(n, 16384) // as kube_test: more is refused here too
	}
	return fmt.Sprintf("%s=%d:%d", name, n, n)
}

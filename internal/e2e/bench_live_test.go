package e2e

import (
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

	// A busybox container from a local image: no registry here.
	layout := filepath.Join(b.TempDir(), "layout")
	rootfstest.Build(b, rootfstest.Spec{Dir: layout, Tag: "latest", NoDefaults: true, Files: []rootfstest.File{
		{Path: "/bin", Mode: os.ModeDir | 0o755},
		{Path: "/bin/busybox", Mode: 0o755, HostPath: "/bin/busybox"},
		{Path: "/bin/sh", Link: "busybox"},
		{Path: "/bin/sleep", Link: "busybox"},
		{Path: "/bin/true", Link: "busybox"},
	}})
	store := b.TempDir()
	pm := func(args ...string) *exec.Cmd {
		return exec.Command(podman, append([]string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"),
			"--cgroup-manager", "cgroupfs", "--events-backend", "file"}, args...)...)
	}
	if out, err := pm("pull", "-q", "oci:"+layout+":latest").CombinedOutput(); err != nil {
		b.Fatalf("podman pull oci layout: %v\n%s", err, out)
	}
	if out, err := pm("run", "-d", "--name", "bench", "--network", "none", "oci:"+layout+":latest", "sleep", "100000").CombinedOutput(); err != nil {
		// pull names the image by its layout path; run it by that name
		b.Fatalf("podman run: %v\n%s", err, out)
	}
	b.Cleanup(func() { _ = pm("rm", "-f", "-t", "0", "bench").Run() })

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

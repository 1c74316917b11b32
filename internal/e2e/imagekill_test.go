package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
)

// TestImageBuildKilled is `loftd image build` SIGKILLed in a RUN step, as
// an OOM killer or a `kill -9` would: the step's processes die with it,
// and `loftd gc` removes the working containers and overlay mounts it
// left and exits 0. Before, the sleeps ran on and gc failed with "a layer
// is mounted".
func TestImageBuildKilled(t *testing.T) {
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	testenv.RequireRoot(t)
	state, work := t.TempDir(), t.TempDir()
	loftd := func(args ...string) *exec.Cmd {
		c := exec.Command(bins.loftd, args...)
		c.Env = append(os.Environ(), "XDG_STATE_HOME="+state, "XDG_CONFIG_HOME="+filepath.Join(state, "config"))
		return c
	}
	out := killBuildThenGC(t, loftd, work, markerImage(t, "base\n"))
	if !strings.Contains(out, "removed working container") {
		t.Errorf("loftd gc after a killed build = %q, want the working containers removed", out)
	}
	if m := mountsBelow(t, state); len(m) > 0 {
		t.Errorf("after loftd gc, mounts remain under the state dir: %q", m)
	}
}

// TestRootlessImageBuildKilled: the same as the unprivileged user, whose
// build runs in the keep-id namespace (its mounts are not the host's to
// check; gc exiting 0 says the store closed with none left).
func TestRootlessImageBuildKilled(t *testing.T) {
	w := newRootlessWorld(t)
	loftd := func(args ...string) *exec.Cmd {
		c := w.cmd()
		c.Args = append([]string{c.Path}, args...)
		return c
	}
	killBuildThenGC(t, loftd, w.ws, w.ref)
}

// killBuildThenGC builds, in work, a recipe on base whose RUN step leaves
// two sleeps without a parent-death signal; SIGKILLs loftd once they run;
// checks that they die; runs loftd gc twice, the second time with nothing
// left to remove, and returns the first one's output.
func killBuildThenGC(t *testing.T, loftd func(args ...string) *exec.Cmd, work, base string) string {
	t.Helper()
	secs := fmt.Sprint(100000 + rand.IntN(800000)) // names this test's sleeps among all processes
	recipe := filepath.Join(work, "Containerfile")
	body := fmt.Sprintf("ARG BASE\nFROM ${BASE}\nRUN busybox sleep %s & busybox sleep %s; echo done\n", secs, secs)
	if err := os.WriteFile(recipe, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	build := loftd("image", "build", "--tag", "killed", "--file", recipe, "--base", base, work)
	var stderr bytes.Buffer
	build.Stderr = &stderr
	if err := build.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- build.Wait() }()
	for len(sleepPids(secs)) < 2 {
		select {
		case err := <-exited:
			t.Fatalf("loftd image build ended before its RUN step ran (%v):\n%s", err, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	build.Process.Signal(syscall.SIGKILL)
	<-exited

	// The parent-death signals travel down Buildah's helpers one at a time.
	deadline := time.Now().Add(30 * time.Second)
	for len(sleepPids(secs)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if pids := sleepPids(secs); len(pids) > 0 {
		t.Errorf("the killed build's RUN step left processes %v running", pids)
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	out, err := loftd("gc").CombinedOutput()
	if err != nil {
		t.Errorf("loftd gc after a killed build = %v, %q; want success", err, out)
	}
	if again, err := loftd("gc").CombinedOutput(); err != nil || strings.Contains(string(again), "removed") {
		t.Errorf("second loftd gc = %v, %q; want success with nothing to remove", err, again)
	}
	return string(out)
}

// sleepPids lists the pids of busybox sleeps of secs seconds.
func sleepPids(secs string) []int {
	want := []byte("sleep\x00" + secs + "\x00")
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, "cmdline")); err == nil && bytes.Contains(b, want) {
			var pid int
			fmt.Sscan(filepath.Base(d), &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsBelow lists the mount points under dir, except the overlay
// driver's private bind of its own directory.
func mountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") && !strings.HasSuffix(f[4], "/images/overlay") {
			out = append(out, f[4])
		}
	}
	return out
}

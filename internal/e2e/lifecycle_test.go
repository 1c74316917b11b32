package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startLong starts loftd on a guest that marks /workspace/started and then
// sleeps, and waits for the mark: the VM is up and the workload running.
func (w *world) startLong(args ...string) (pid int, wait func() (int, string)) {
	w.t.Helper()
	c := w.cmd(append(args, "--", "sh", "-c", "touch /workspace/started; exec sleep 600")...)
	var errb strings.Builder
	c.Stderr = &errb
	if err := c.Start(); err != nil {
		w.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	deadline := time.After(2 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(w.workspace, "started")); err == nil {
			break
		}
		select {
		case <-done:
			w.t.Fatalf("loftd ended before the workload started: %s", errb.String())
		case <-deadline:
			_ = c.Process.Kill()
			w.t.Fatalf("workload did not start within 2 minutes: %s", errb.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return c.Process.Pid, func() (int, string) {
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = c.Process.Kill()
			<-done
			w.t.Errorf("loftd did not end within a minute of the signal")
		}
		if c.ProcessState == nil {
			return -1, errb.String()
		}
		if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), errb.String()
		}
		return c.ProcessState.ExitCode(), errb.String()
	}
}

// leftovers lists processes whose command line names the world's state
// directory: QEMU and virtiofsd sockets and the helper's task dir live there.
func (w *world) leftovers() []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(data), w.state) {
			out = append(out, strings.ReplaceAll(string(data), "\x00", " "))
		}
	}
	return out
}

// waitNoLeftovers polls: children get SIGTERM and need a moment to go.
func (w *world) waitNoLeftovers() []string {
	deadline := time.Now().Add(15 * time.Second)
	for {
		left := w.leftovers()
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSIGTERMEndsVM(t *testing.T) {
	w := newWorld(t)
	pid, wait := w.startLong()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	status, stderr := wait()
	if status != 128+int(syscall.SIGTERM) {
		t.Errorf("loftd after SIGTERM: status %d, want %d; stderr:\n%s", status, 128+int(syscall.SIGTERM), stderr)
	}
	if left := w.waitNoLeftovers(); len(left) > 0 {
		t.Errorf("processes left behind after SIGTERM:\n%s", strings.Join(left, "\n"))
	}
	if tasks, _ := os.ReadDir(filepath.Join(w.state, "loftd", "tasks")); len(tasks) != 0 {
		t.Errorf("task directory not removed after SIGTERM: %v", tasks)
	}
}

func TestKilledParentIsCollected(t *testing.T) {
	w := newWorld(t)
	pid, wait := w.startLong()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait()
	if left := w.waitNoLeftovers(); len(left) > 0 {
		t.Errorf("processes left behind after SIGKILL of loftd:\n%s", strings.Join(left, "\n"))
	}
	tasks, _ := os.ReadDir(filepath.Join(w.state, "loftd", "tasks"))
	if len(tasks) != 1 {
		t.Fatalf("killed run left %d task directories, want 1 (its state)", len(tasks))
	}
	c := w.cmd()
	c.Args = []string{bins.loftd, "gc"}
	out, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed stale task "+tasks[0].Name()) {
		t.Errorf("loftd gc: %v\n%s", err, out)
	}
	if rest, _ := os.ReadDir(filepath.Join(w.state, "loftd", "tasks")); len(rest) != 0 {
		t.Errorf("loftd gc left %d task directories", len(rest))
	}
}

func TestPreserveDebug(t *testing.T) {
	w := newWorld(t)
	status, _, stderr := w.run("", "--preserve-debug", "--", "true")
	tasks, _ := os.ReadDir(filepath.Join(w.state, "loftd", "tasks"))
	if status != 0 || len(tasks) != 1 || !strings.Contains(stderr, "kept task directory") {
		t.Fatalf("--preserve-debug: status %d, %d task dirs, stderr %q; want the task kept and said so", status, len(tasks), stderr)
	}
	if _, err := os.Stat(filepath.Join(w.state, "loftd", "tasks", tasks[0].Name(), "launch.json")); err != nil {
		t.Errorf("kept task has no launch.json: %v", err)
	}
}

func TestSetupFailureIs125(t *testing.T) {
	w := newWorld(t)
	c := w.cmd("--", "true")
	for i, a := range c.Args {
		if a == bins.guestInit {
			c.Args[i] = filepath.Join(t.TempDir(), "no-such-init")
		}
	}
	out, _ := c.CombinedOutput()
	if c.ProcessState.ExitCode() != 125 || !strings.Contains(string(out), "no-such-init") {
		t.Errorf("missing guest init: status %d, output %q; want 125 naming the file", c.ProcessState.ExitCode(), out)
	}
}

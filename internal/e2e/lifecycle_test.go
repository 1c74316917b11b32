package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/launch"
)

// longScript marks /workspace/started and then sleeps (a shell redirect,
// not touch: the rootless world's image has few applets linked).
const longScript = ": >/workspace/started; exec sleep 600"

// startLong starts loftd on a guest that runs longScript and waits for the
// mark: the VM is up and the workload running.
func (w *world) startLong(args ...string) (pid int, wait func() (int, string)) {
	w.t.Helper()
	return startLong(w.t, w.cmd(append(args, "--", "sh", "-c", longScript)...), w.workspace)
}

// startLong starts c, whose guest runs longScript in workspace, and waits
// for the mark.
func startLong(t testing.TB, c *exec.Cmd, workspace string) (pid int, wait func() (int, string)) {
	t.Helper()
	var errb strings.Builder
	c.Stderr = &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill() }) // a no-op once it ended
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	waitFile(t, filepath.Join(workspace, "started"), done, &errb)
	return c.Process.Pid, func() (int, string) {
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = c.Process.Kill()
			<-done
			t.Errorf("loftd did not end within a minute of the signal")
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

// waitFile waits until path exists: the workload is running. done closing
// first means loftd ended early; stderr says why.
func waitFile(t testing.TB, path string, done <-chan struct{}, stderr fmt.Stringer) {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("loftd ended before the workload started: %s", stderr)
		case <-deadline:
			t.Fatalf("workload did not start within 2 minutes: %s", stderr)
		case <-time.After(100 * time.Millisecond):
		}
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

// TestPreserveDebug: the kept task holds the plan, outlives the automatic
// collection of the next run, and goes with an explicit gc, as the run said.
func TestPreserveDebug(t *testing.T) {
	w := newWorld(t)
	status, _, stderr := w.run("", "--preserve-debug", "--", "true")
	tasks := w.tasks()
	if status != 0 || len(tasks) != 1 || !strings.Contains(stderr, "kept task directory") || !strings.Contains(stderr, "loftd gc") {
		t.Fatalf("--preserve-debug: status %d, task dirs %q, stderr %q; want the task kept and said so", status, tasks, stderr)
	}
	taskDir := filepath.Join(w.state, "loftd", "tasks", tasks[0])
	c := w.cmd()
	c.Args = []string{bins.loftd, "internal", "decode-plan", taskDir}
	out, err := c.CombinedOutput()
	for _, want := range []string{fmt.Sprintf(`"version": %d`, launch.Version), `"vmm": "`, `"exec_path": "/.loftd/guest-init"`, w.workspace, `"loftd-nix"`} {
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("loftd internal decode-plan of the kept task: %v, output lacks %q:\n%s", err, want, out)
		}
	}
	if status, _, stderr := w.run("", "--", "true"); status != 0 {
		t.Fatalf("the next run: status %d, stderr %q", status, stderr)
	}
	if got := w.tasks(); len(got) != 1 || got[0] != tasks[0] {
		t.Fatalf("after the next run, task dirs %q; want the kept task %s only", got, tasks[0])
	}
	w.gc("removed kept task " + tasks[0])
}

// TestSetupFailureKeepsLogs: a guest whose init exits at once fails the
// run with an error that quotes its logs and names the task directory, so
// the directory must still be there, kept until gc.
func TestSetupFailureKeepsLogs(t *testing.T) {
	w := newWorld(t)
	c := w.cmd("--", "true")
	for i, a := range c.Args {
		if a == bins.guestInit {
			// busybox as init: "guest-init: applet not found", exit 127.
			c.Args[i] = testenv.RequireCommand(t, "busybox", "busybox-static")
		}
	}
	out, _ := c.CombinedOutput()
	tasks := w.tasks()
	if c.ProcessState.ExitCode() != 125 || len(tasks) != 1 {
		t.Fatalf("init that exits: status %d, task dirs %q, output %q; want 125 and the task kept", c.ProcessState.ExitCode(), tasks, out)
	}
	taskDir := filepath.Join(w.state, "loftd", "tasks", tasks[0])
	if !strings.Contains(string(out), taskDir) || !strings.Contains(string(out), "kept task directory") {
		t.Errorf("init that exits: output %q; want it to name the kept task %s", out, taskDir)
	}
	if _, err := os.Stat(filepath.Join(taskDir, "console.log")); err != nil {
		t.Errorf("the logs the error points at: %v", err)
	}
	if status, _, stderr := w.run("", "--", "true"); status != 0 || len(w.tasks()) != 1 {
		t.Errorf("the next run: status %d (stderr %q), task dirs %q; want the kept task still there", status, stderr, w.tasks())
	}
	w.gc("removed kept task " + tasks[0])
}

// tasks lists the names in the world's task directory.
func (w *world) tasks() []string {
	ents, _ := os.ReadDir(filepath.Join(w.state, "loftd", "tasks"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// gc runs loftd gc, wants want in its output and no task left.
func (w *world) gc(want string) {
	w.t.Helper()
	c := w.cmd()
	c.Args = []string{bins.loftd, "gc"}
	out, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(out), want) {
		w.t.Errorf("loftd gc: %v, output %q; want %q", err, out, want)
	}
	if rest := w.tasks(); len(rest) != 0 {
		w.t.Errorf("loftd gc left task dirs %q", rest)
	}
}

// TestWithoutCgo: a host binary built without cgo cannot work (Buildah's
// storage needs it) and must say so at once instead of looping.
func TestWithoutCgo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "loftd-nocgo")
	cmd := exec.Command("go", "build", "-tags", "containers_image_openpgp", "-o", bin, "../../cmd/loftd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build without cgo: %v\n%s", err, out)
	}
	c := exec.Command(bin, "--", "true")
	out, _ := c.CombinedOutput()
	if c.ProcessState.ExitCode() != 125 || !strings.Contains(string(out), "built without cgo") {
		t.Errorf("loftd built without cgo: status %d, output %q; want 125 and the reason", c.ProcessState.ExitCode(), out)
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

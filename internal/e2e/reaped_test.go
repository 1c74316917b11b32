package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// reapWorld is what testReaped needs of a world: loftd in it, its
// workspace, and where the processes of its runs show.
type reapWorld struct {
	cmd       func(args ...string) *exec.Cmd
	workspace string
	// passtEnv is an entry of the environment every passt of the world
	// inherits (passt's command line names no path).
	passtEnv string
	// dirs are named by the command lines of the world's QEMU and
	// virtiofsd (its state dir and workspace).
	dirs []string
}

// TestNetworkReaped: the network's process (loftd's netstack, the
// default, and passt), QEMU and virtiofsd are gone after the VM ends: the
// guest's command killed by SIGKILL, loftd ended by SIGTERM, loftd killed
// by SIGKILL, and a run that ends by itself.
func TestNetworkReaped(t *testing.T) {
	w := newWorld(t)
	testReaped(t, reapWorld{cmd: w.cmd, workspace: w.workspace,
		passtEnv: "XDG_STATE_HOME=" + w.state, dirs: []string{w.state, w.workspace}})
	passt := func(args ...string) *exec.Cmd { return w.cmd(append([]string{"--network", "passt"}, args...)...) }
	testReaped(t, reapWorld{cmd: passt, workspace: w.workspace,
		passtEnv: "XDG_STATE_HOME=" + w.state, dirs: []string{w.state, w.workspace}})
}

// TestNetworkReapedRootless: the same for the unprivileged user's loftd.
// Its helper runs as root of the keep-id user namespace, and so does
// passt (on the host, the user's first subordinate uid): it does not drop
// to nobody as root's passt does, and keeps its Pdeathsig.
func TestNetworkReapedRootless(t *testing.T) {
	w := newRootlessWorld(t)
	// The world sets HOME, not XDG_STATE_HOME: the state dir is under it.
	testReaped(t, reapWorld{cmd: w.cmd, workspace: w.ws, passtEnv: "HOME=" + w.home, dirs: []string{w.base}})
}

// testReaped ends a VM of w in three ways, then runs one to its end, and
// checks after each that no passt, QEMU or virtiofsd of w is left.
func testReaped(t *testing.T, w reapWorld) {
	t.Helper()
	status, stderr := runToEnd(t, w.cmd("--", "sh", "-c", "kill -9 $$"))
	if status != 128+9 {
		t.Errorf("kill -9 $$ in the guest: status %d, want 137; stderr:\n%s", status, stderr)
	}
	checkReaped(t, w, "SIGKILL of the guest command")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		os.Remove(filepath.Join(w.workspace, "started"))
		pid, wait := startLong(t, w.cmd("--", "sh", "-c", longScript), w.workspace)
		if passts, _ := passtsWith(w.passtEnv); len(passts) == 0 {
			t.Errorf("no network process (passt or netstack) with %s runs for the VM before %s", w.passtEnv, unix.SignalName(sig))
		}
		_ = syscall.Kill(pid, sig)
		wait()
		checkReaped(t, w, unix.SignalName(sig)+" of loftd")
	}
	// The next run collects the task the SIGKILLed loftd left (its root
	// is still mounted until then).
	if status, stderr := runToEnd(t, w.cmd("--", "sh", "-c", "exit 0")); status != 0 {
		t.Errorf("the run after SIGKILL: status %d; stderr:\n%s", status, stderr)
	}
	checkReaped(t, w, "the command's exit")
}

// checkReaped fails the test when a passt, QEMU or virtiofsd of w is still
// there a while after the run ended (one that is ends by itself only if
// its parent's death reaches it), and kills what it finds.
func checkReaped(t *testing.T, w reapWorld, how string) {
	t.Helper()
	left := func() (passts, others []string, pids []int) {
		passts, pids = passtsWith(w.passtEnv)
		for _, d := range w.dirs {
			lines, ps := processesUnder(d)
			others, pids = append(others, lines...), append(pids, ps...)
		}
		return passts, others, pids
	}
	deadline := time.Now().Add(30 * time.Second)
	passts, others, pids := left()
	for len(pids) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		passts, others, pids = left()
	}
	if len(pids) == 0 {
		return
	}
	t.Errorf("%s left behind: passt %q, others %q", how, passts, others)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// passtsWith lists the live network processes (passt, or loftd's
// netstack: `loftd internal netstack`) whose environment has the entry env
// ("NAME=value").
func passtsWith(env string) (lines []string, pids []int) {
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range procs {
		comm, _ := os.ReadFile(p)
		dir := filepath.Dir(p)
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		if !strings.HasPrefix(string(comm), "passt") && !bytes.Contains(cmdline, []byte("\x00internal\x00netstack\x00")) {
			continue
		}
		environ, _ := os.ReadFile(filepath.Join(dir, "environ"))
		stat, _ := os.ReadFile(filepath.Join(dir, "stat"))
		if !bytes.HasPrefix(environ, []byte(env+"\x00")) && !bytes.Contains(environ, []byte("\x00"+env+"\x00")) {
			continue
		}
		if strings.Contains(string(stat), ") Z ") {
			continue // a zombie is gone but for its parent's wait
		}
		pid, _ := strconv.Atoi(filepath.Base(dir))
		lines = append(lines, filepath.Base(dir)+": "+strings.TrimSpace(string(comm)))
		pids = append(pids, pid)
	}
	return lines, pids
}

// runToEnd runs c to the end and returns its status and stderr.
func runToEnd(t *testing.T, c *exec.Cmd) (int, string) {
	t.Helper()
	var errb bytes.Buffer
	c.Stderr = &errb
	if err := c.Run(); err != nil && c.ProcessState == nil {
		t.Fatalf("%s: %v", c.Path, err)
	}
	return c.ProcessState.ExitCode(), errb.String()
}

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"golang.org/x/sys/unix"
)

// openPty returns a new pseudo-terminal pair; the test holds the master.
func openPty(t testing.TB) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		// Through testenv: CI (LOFTD_TEST_REQUIRE_ALL=1) fails instead of
		// skipping the terminal tests silently.
		testenv.Missing(t, "no pseudo-terminals (/dev/ptmx): %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// TestTerminalRestoredWhenHelperKilled: with a terminal on stdin loftd puts
// it into raw mode, and restores it even when its helper (and with it the
// VM) is killed out from under it.
func TestTerminalRestoredWhenHelperKilled(t *testing.T) {
	w := newWorld(t)
	_, slave := openPty(t)
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if before.Lflag&unix.ICANON == 0 {
		t.Fatalf("a new pty is not in canonical mode: the test would prove nothing")
	}
	c := w.cmd("--", "sh", "-c", "touch /workspace/started; exec sleep 600")
	// A terminal session has the terminal on stdin and stdout: loftd makes
	// a session interactive only then (loftd -- cmd > file stays exact).
	c.Stdin, c.Stdout = slave, slave
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill() }) // a no-op once it ended
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	waitFile(t, filepath.Join(w.workspace, "started"), done, &stderr)
	during, _ := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if during.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 {
		t.Errorf("terminal not in raw mode while the VM runs: lflag %#x", during.Lflag)
	}
	helper := childWith(t, c.Process.Pid, "internal\x00enter")
	if err := syscall.Kill(helper, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	if got := c.ProcessState.ExitCode(); got != 128+9 {
		t.Errorf("loftd after its helper was SIGKILLed: status %d, want %d\n%s", got, 128+9, stderr.String())
	}
	after, _ := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if *after != *before {
		t.Errorf("terminal not restored after the helper was killed:\nbefore %+v\nafter  %+v", *before, *after)
	}
	if left := w.waitNoLeftovers(); len(left) > 0 {
		t.Errorf("processes left behind after the helper was killed:\n%s", strings.Join(left, "\n"))
	}
}

// childWith returns the pid of parent's child whose command line holds s.
func childWith(t *testing.T, parent int, s string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		stat, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
			continue
		}
		dir := filepath.Dir(p)
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		if strings.Contains(string(cmdline), s) {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			return pid
		}
	}
	t.Fatalf("no child of %d runs %q", parent, s)
	return 0
}

// Package statetest makes task directories in the states tests need: live
// (claimed) or dead, kept or not, with a pid file that lies or tells.
package statetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/loftd/loftd/host/state"
	"golang.org/x/sys/unix"
)

// FakeTask makes STATE/tasks/<id> with a pid file holding pid (none when
// pid is 0) and, with locked, holds the task's claim (an flock on the task
// directory) as the owning loftd would, until the test ends.
func FakeTask(t *testing.T, st state.State, id string, pid int, locked, keep bool) string {
	t.Helper()
	dir := filepath.Join(st.Tasks(), id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if pid != 0 {
		if err := os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if keep {
		if err := os.WriteFile(filepath.Join(dir, "keep"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if locked {
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// OtherLiveProcess returns the pid of a live process that is not a loftd:
// a task's pid that the kernel handed out again.
func OtherLiveProcess(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// DeadPid returns the pid of a process that has ended and been reaped.
func DeadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestCollectStale: a task is dead, and collected, exactly when nothing
// holds its claim; its pid file (missing, reused, gone) does not matter.

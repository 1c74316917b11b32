package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRootlessKillLeavesNothing: SIGKILL of the user's loftd, at any moment
// of a rootless run (entering the namespace, ingesting, booting, running),
// leaves no loftd, QEMU or virtiofsd of the run behind, and the next run
// in the workspace works: the lock is free (issue 7, defect 4).
func TestRootlessKillLeavesNothing(t *testing.T) {
	w := newRootlessWorld(t)
	for _, after := range []time.Duration{200 * time.Millisecond, time.Second, 3 * time.Second} {
		t.Run(after.String(), func(t *testing.T) {
			// Files, not pipes: a leaked process would hold a pipe open
			// and Wait would wait for it.
			logf, err := os.Create(filepath.Join(t.TempDir(), "loftd.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			c := w.cmd("--", "sleep", "600")
			c.Stdout, c.Stderr = logf, logf
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(after)
			if err := c.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = c.Wait()
			left := waitNoProcessesUnder(w.base, 10*time.Second)
			if len(left) > 0 {
				log, _ := os.ReadFile(logf.Name())
				t.Errorf("SIGKILL of loftd %v after start left behind:\n%s\nloftd output:\n%s", after, strings.Join(left, "\n"), log)
				killUnder(w.base)
			}
			next := w.cmd("--", "sh", "-c", "exit 0")
			if out, err := next.CombinedOutput(); err != nil {
				t.Errorf("the next run in the workspace: %v\n%s", err, out)
			}
		})
	}
}

// waitNoProcessesUnder polls until no process names dir, or the time is
// up; it returns what is left.
func waitNoProcessesUnder(dir string, within time.Duration) []string {
	deadline := time.Now().Add(within)
	for {
		left, _ := processesUnder(dir)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killUnder SIGKILLs what a failed test left, so it cannot disturb others.
func killUnder(dir string) {
	_, pids := processesUnder(dir)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	waitNoProcessesUnder(dir, 10*time.Second)
}

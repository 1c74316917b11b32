package guestinit

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReaperDispatch starts children from several goroutines through one
// reaper, with orphans ending among them: each waiter gets its own
// child's status, whatever order they end in.
func TestReaperDispatch(t *testing.T) {
	r := newReaper()
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer devnull.Close()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The background sleep outlives sh: an orphan for a subreaper,
			// init's child otherwise; neither may take a status.
			script := fmt.Sprintf("(sleep 0.0%d &); sleep 0.0%d; exit %d", i, 8-i, 10+i)
			pid, done, err := r.Start("/bin/sh", []string{"sh", "-c", script}, &os.ProcAttr{Files: []*os.File{devnull, devnull, devnull}})
			if err != nil {
				t.Error(err)
				return
			}
			if got := waitStatus(<-done); got != 10+i {
				t.Errorf("child %d (pid %d): status %d, want %d", i, pid, got, 10+i)
			}
		}()
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.waiting) != 0 {
		t.Errorf("after every status: %d still waiting", len(r.waiting))
	}
}

// TestReaperGate: a gated child that ended stays a zombie, its /proc
// entry readable, until it is released; then its status arrives.
func TestReaperGate(t *testing.T) {
	r := newReaper()
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer devnull.Close()
	pid, done, release, err := r.startGated("/bin/sh", []string{"sh", "-c", "exit 3"}, &os.ProcAttr{Files: []*os.File{devnull, devnull, devnull}})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for it to be a zombie: the loop has seen it end by then.
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatalf("gated child %d reaped before its release: %v", pid, err)
		}
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case ws := <-done:
		t.Fatalf("status %v before the release", ws)
	default:
	}
	release()
	if got := waitStatus(<-done); got != 3 {
		t.Errorf("status %d, want 3", got)
	}
}

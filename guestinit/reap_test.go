package guestinit

import (
	"fmt"
	"os"
	"sync"
	"testing"
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

package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/host/state/statetest"
)

// TestGCRemovesKeptTasks: a kept task outlives the automatic collection of
// the next runs; an explicit gc removes it, and leaves live tasks alone.
func TestGCRemovesKeptTasks(t *testing.T) {
	c := newCLI(t)
	st := state.State{Dir: filepath.Join(c.home, ".local", "state", "loftd")}
	kept := statetest.FakeTask(t, st, "20250101T000000-0000000a", statetest.DeadPid(t), false, true)
	live := statetest.FakeTask(t, st, "20250101T000000-0000000b", 0, true, true)
	dead := statetest.FakeTask(t, st, "20250101T000000-0000000c", statetest.OtherLiveProcess(t), false, false)
	status, stdout, stderr := c.run("gc")
	if status != 0 {
		t.Fatalf("loftd gc: status %d, stderr %q", status, stderr)
	}
	for dir, wantGone := range map[string]bool{kept: true, live: false, dead: true} {
		_, err := os.Stat(dir)
		if gone := os.IsNotExist(err); gone != wantGone {
			t.Errorf("after loftd gc, %s removed: %v, want %v (stdout %q)", filepath.Base(dir), gone, wantGone, stdout)
		}
		if wantGone && !strings.Contains(stdout, filepath.Base(dir)) {
			t.Errorf("loftd gc did not say it removed %s: %q", filepath.Base(dir), stdout)
		}
	}
}

// TestPsShowsLiveTasks: ps lists the tasks whose claim is held, whatever
// their pid files say, and no dead one.
func TestPsShowsLiveTasks(t *testing.T) {
	c := newCLI(t)
	st := state.State{Dir: filepath.Join(c.home, ".local", "state", "loftd")}
	statetest.FakeTask(t, st, "20250101T000000-0000000a", 0, true, false)
	statetest.FakeTask(t, st, "20250101T000000-0000000b", statetest.OtherLiveProcess(t), false, false)
	status, stdout, stderr := c.run("ps")
	if status != 0 || !strings.Contains(stdout, "0000000a") || strings.Contains(stdout, "0000000b") {
		t.Errorf("loftd ps: status %d, stdout %q, stderr %q; want the locked task only", status, stdout, stderr)
	}
}

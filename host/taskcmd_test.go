package host

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
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

// TestPsRSS: ps reports the resident set of each task's VM process (QEMU
// below the helper), and 0 for a task whose VM is not running.
func TestPsRSS(t *testing.T) {
	proc := t.TempDir()
	for _, p := range []struct {
		pid, ppid            int
		comm, cmdline, rssKB string
	}{
		{100, 1, "loftd", "loftd\x00--\x00make\x00", "9000"},
		{101, 100, "loftd", "loftd\x00internal\x00enter\x00/t\x00", "20000"},
		{102, 101, "qemu-system-x86", "qemu-system-x86_64\x00", "524288"},
		{200, 1, "loftd", "loftd\x00", "9000"},
	} {
		dir := filepath.Join(proc, strconv.Itoa(p.pid))
		files := map[string]string{
			"stat":    fmt.Sprintf("%d (%s) S %d 1 1\n", p.pid, p.comm, p.ppid),
			"cmdline": p.cmdline,
			"status":  "VmRSS:\t" + p.rssKB + " kB\n",
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tasks := []state.TaskInfo{
		{ID: "a", PID: 100, Alive: true},
		{ID: "b", PID: 200, Alive: true},
		{ID: "c", PID: 0, Alive: true},
		{ID: "dead", PID: 100},
	}
	got := map[string]int64{}
	for _, j := range liveTasks(tasks, proc, false) {
		got[j.ID] = j.RSS
	}
	want := map[string]int64{"a": 512 << 20, "b": 0, "c": 0}
	if !maps.Equal(got, want) {
		t.Errorf("liveTasks() RSS = %v, want %v", got, want)
	}
	for _, tt := range []struct {
		b    int64
		want string
	}{{0, "-"}, {512 << 20, "512M"}, {3 << 30, "3072M"}, {12 << 30, "12.0G"}} {
		if got := rssText(tt.b); got != tt.want {
			t.Errorf("rssText(%d) = %q, want %q", tt.b, got, tt.want)
		}
	}
}

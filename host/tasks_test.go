package host

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeTask makes STATE/tasks/<id> with a pid file holding pid (none when
// pid is 0) and, with locked, holds the task's claim (an flock on the task
// directory) as the owning loftd would, until the test ends.
func fakeTask(t *testing.T, st State, id string, pid int, locked, keep bool) string {
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

// otherLiveProcess returns the pid of a live process that is not a loftd:
// a task's pid that the kernel handed out again.
func otherLiveProcess(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// deadPid returns the pid of a process that has ended and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestCollectStale: a task is dead, and collected, exactly when nothing
// holds its claim; its pid file (missing, reused, gone) does not matter.
func TestCollectStale(t *testing.T) {
	tests := []struct {
		name          string
		pid           func(*testing.T) int
		locked, keep  bool
		wantCollected bool
	}{
		{"live task without pid file", func(*testing.T) int { return 0 }, true, false, false},
		{"live task with a bogus pid", func(*testing.T) int { return 1 << 22 }, true, false, false},
		{"live task whose pid file names a dead process", deadPid, true, false, false},
		{"dead task whose pid was reused", otherLiveProcess, false, false, true},
		{"dead task without pid file", func(*testing.T) int { return 0 }, false, false, true},
		{"dead kept task", deadPid, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := State{Dir: t.TempDir()}
			dir := fakeTask(t, st, "20250101T000000-0000abcd", tt.pid(t), tt.locked, tt.keep)
			e := &env{prog: "loftd", log: newLogger(&strings.Builder{}, false)}
			removed, err := e.collectStale(st)
			if err != nil {
				t.Fatal(err)
			}
			_, serr := os.Stat(dir)
			if gone := os.IsNotExist(serr); gone != tt.wantCollected || (len(removed) == 1) != tt.wantCollected {
				t.Errorf("automatic collection: task removed %v (reported %q), want %v", gone, removed, tt.wantCollected)
			}
		})
	}
}

// TestGCRemovesKeptTasks: a kept task outlives the automatic collection of
// the next runs; an explicit gc removes it, and leaves live tasks alone.
func TestGCRemovesKeptTasks(t *testing.T) {
	c := newCLI(t)
	st := State{Dir: filepath.Join(c.home, ".local", "state", "loftd")}
	kept := fakeTask(t, st, "20250101T000000-0000000a", deadPid(t), false, true)
	live := fakeTask(t, st, "20250101T000000-0000000b", 0, true, true)
	dead := fakeTask(t, st, "20250101T000000-0000000c", otherLiveProcess(t), false, false)
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
	st := State{Dir: filepath.Join(c.home, ".local", "state", "loftd")}
	fakeTask(t, st, "20250101T000000-0000000a", 0, true, false)
	fakeTask(t, st, "20250101T000000-0000000b", otherLiveProcess(t), false, false)
	status, stdout, stderr := c.run("ps")
	if status != 0 || !strings.Contains(stdout, "0000000a") || strings.Contains(stdout, "0000000b") {
		t.Errorf("loftd ps: status %d, stdout %q, stderr %q; want the locked task only", status, stdout, stderr)
	}
}

// TestNewTaskDirClaims: a new task is live (listed, never collected) from
// the moment it has its name until Release, even without its pid file; a
// creation that crashed before the rename is collected.
func TestNewTaskDirClaims(t *testing.T) {
	st := State{Dir: t.TempDir()}
	e := &env{prog: "loftd", log: newLogger(&strings.Builder{}, false)}
	task, err := st.NewTaskDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(task.Dir, "pid")); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(st.Tasks(), newTaskPrefix+"20250101T000000-0000abcd")
	if err := os.Mkdir(crashed, 0o700); err != nil {
		t.Fatal(err)
	}
	removed, err := e.collectStale(st)
	if err != nil || len(removed) != 1 || removed[0] != filepath.Base(crashed) {
		t.Errorf("collection beside a live task = %q, %v; want only the crashed creation %s", removed, err, filepath.Base(crashed))
	}
	if _, err := os.Stat(task.Dir); err != nil {
		t.Fatalf("live task collected: %v", err)
	}
	tasks, err := st.listTasks()
	if err != nil || len(tasks) != 1 || !tasks[0].Alive || tasks[0].ID != task.ID {
		t.Errorf("listTasks = %+v, %v; want the live task %s", tasks, err, task.ID)
	}
	if err := task.Release(); err != nil {
		t.Fatal(err)
	}
	if removed, err := e.collectStale(st); err != nil || len(removed) != 1 || removed[0] != task.ID {
		t.Errorf("collection after Release = %q, %v; want %s", removed, err, task.ID)
	}
}

// TestTaskLockNotInherited: the claim must end with its loftd, so no child
// (the helper, the VM) may hold it: the descriptor is close-on-exec.
func TestTaskLockNotInherited(t *testing.T) {
	st := State{Dir: t.TempDir()}
	task, err := st.NewTaskDir()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "600")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	task.Release()
	if tasks, err := st.listTasks(); err != nil || len(tasks) != 1 || tasks[0].Alive {
		t.Errorf("after Release with a child still running, listTasks = %+v, %v; want the task dead", tasks, err)
	}
}

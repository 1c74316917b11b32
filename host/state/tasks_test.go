package state_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/host/state/statetest"
)

func TestCollectStale(t *testing.T) {
	tests := []struct {
		name          string
		pid           func(*testing.T) int
		locked, keep  bool
		wantCollected bool
	}{
		{"live task without pid file", func(*testing.T) int { return 0 }, true, false, false},
		{"live task with a bogus pid", func(*testing.T) int { return 1 << 22 }, true, false, false},
		{"live task whose pid file names a dead process", statetest.DeadPid, true, false, false},
		{"dead task whose pid was reused", statetest.OtherLiveProcess, false, false, true},
		{"dead task without pid file", func(*testing.T) int { return 0 }, false, false, true},
		{"dead kept task", statetest.DeadPid, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := State{Dir: t.TempDir()}
			dir := statetest.FakeTask(t, st, "20250101T000000-0000abcd", tt.pid(t), tt.locked, tt.keep)
			removed, err := st.CollectStale()
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

// TestNewTaskClaims: a new task is live (listed, never collected) from
// the moment it has its name until Release, even without its pid file; a
// creation that crashed before the rename is collected.
func TestNewTaskClaims(t *testing.T) {
	st := State{Dir: t.TempDir()}
	task, err := st.NewTask()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(task.Dir, "pid")); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(st.Tasks(), ".new-"+"20250101T000000-0000abcd")
	if err := os.Mkdir(crashed, 0o700); err != nil {
		t.Fatal(err)
	}
	removed, err := st.CollectStale()
	if err != nil || len(removed) != 1 || removed[0] != filepath.Base(crashed) {
		t.Errorf("collection beside a live task = %q, %v; want only the crashed creation %s", removed, err, filepath.Base(crashed))
	}
	if _, err := os.Stat(task.Dir); err != nil {
		t.Fatalf("live task collected: %v", err)
	}
	tasks, err := st.ListTasks()
	if err != nil || len(tasks) != 1 || !tasks[0].Alive || tasks[0].ID != task.ID {
		t.Errorf("ListTasks = %+v, %v; want the live task %s", tasks, err, task.ID)
	}
	if err := task.Release(); err != nil {
		t.Fatal(err)
	}
	if removed, err := st.CollectStale(); err != nil || len(removed) != 1 || removed[0] != task.ID {
		t.Errorf("collection after Release = %q, %v; want %s", removed, err, task.ID)
	}
}

// TestTaskLockNotInherited: the claim must end with its loftd, so no child
// (the helper, the VM) may hold it: the descriptor is close-on-exec.
func TestTaskLockNotInherited(t *testing.T) {
	st := State{Dir: t.TempDir()}
	task, err := st.NewTask()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "600")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	task.Release()
	if tasks, err := st.ListTasks(); err != nil || len(tasks) != 1 || tasks[0].Alive {
		t.Errorf("after Release with a child still running, ListTasks = %+v, %v; want the task dead", tasks, err)
	}
}

package state

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/rootfs"
	"golang.org/x/sys/unix"
)

// A task is claimed by an exclusive flock(2) on its directory, held by the
// loftd that owns the task for the task's whole life. The kernel drops the
// lock when that loftd ends, however it ends, and the descriptor is
// close-on-exec, so neither the helper nor the VM inherits it: a task is
// dead exactly when its lock can be taken. A pid file cannot tell that:
// pids are reused, and the file may not be written yet.
//
// The lock is taken before the directory gets its name: it is made as
// .new-<id>, locked, given its pid file and renamed into place, so ps and
// gc never see an unclaimed task under its real name.

const (
	// keepFile marks a task that only an explicit gc may remove: a run
	// with --preserve-debug, or one whose error sends the user to its logs.
	keepFile = "keep"
	// newTaskPrefix names a task directory not yet claimed and renamed.
	newTaskPrefix = ".new-"
	// claimTries bounds the retries when a gc removes a directory between
	// its mkdir and its lock, taking it for a crashed creation.
	claimTries = 3
)

// Task is a task directory this process has claimed.
type Task struct {
	ID, Dir string
	lock    *os.File
}

// NewTask creates and claims STATE/tasks/<id> with a time-ordered,
// unique id. The claim lasts until Release; the pid file is for ps.
func (s State) NewTask() (*Task, error) {
	tasks, err := filepath.Abs(s.Tasks())
	if err != nil {
		return nil, fmt.Errorf("create task directory: %w", err)
	}
	if err := os.MkdirAll(tasks, 0o700); err != nil {
		return nil, fmt.Errorf("create task directory: %w", err)
	}
	for try := 1; ; try++ {
		t, err := claimNewTask(tasks)
		if !errors.Is(err, errClaimLost) || try == claimTries {
			return t, err
		}
	}
}

var errClaimLost = errors.New("a concurrent gc removed the new task directory")

func claimNewTask(tasks string) (*Task, error) {
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("task id: %w", err)
	}
	id := time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(rnd[:])
	tmp, dir := filepath.Join(tasks, newTaskPrefix+id), filepath.Join(tasks, id)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("create task directory: %w", err)
	}
	// Wait: a gc or ps probing tmp holds its lock only for a moment.
	lock, err := lockDir(tmp, unix.LOCK_EX)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errClaimLost
	}
	if err != nil {
		return nil, fmt.Errorf("create task directory: %w", err)
	}
	t := &Task{ID: id, Dir: dir, lock: lock}
	// A gc may have removed tmp between our mkdir and our lock: then the
	// lock is on a deleted directory and tmp, if any, is another one.
	if !sameFile(lock, tmp) {
		t.Release()
		return nil, errClaimLost
	}
	err = os.WriteFile(filepath.Join(tmp, "pid"), fmt.Appendf(nil, "%d\n", os.Getpid()), 0o600)
	if err == nil {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		os.RemoveAll(tmp)
		t.Release()
		return nil, fmt.Errorf("create task directory %s: %w", dir, err)
	}
	return t, nil
}

// Keep marks the task for an explicit gc only.
func (t *Task) Keep() error {
	if err := os.WriteFile(filepath.Join(t.Dir, keepFile), nil, 0o600); err != nil {
		return fmt.Errorf("keep task %s: %w", t.Dir, err)
	}
	return nil
}

// Remove deletes the task directory and its root; the claim stays held.
func (t *Task) Remove() error { return RemoveTaskDir(t.Dir) }

// Release gives up the claim: from now on gc may collect the task.
func (t *Task) Release() error {
	if t.lock == nil {
		return nil
	}
	err := t.lock.Close()
	t.lock = nil
	return err
}

// tryLockDir opens dir and takes its lock without waiting; an error that
// is unix.EWOULDBLOCK means a live loftd holds it.
func tryLockDir(dir string) (*os.File, error) { return lockDir(dir, unix.LOCK_EX|unix.LOCK_NB) }

func lockDir(dir string, how int) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	for {
		err = unix.Flock(fd, how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: dir, Err: err}
	}
	return f, nil
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	return err == nil && os.SameFile(a, b)
}

// TaskInfo is what ps and gc know of one task directory.
type TaskInfo struct {
	ID, Dir     string
	PID         int
	Alive, Kept bool
	Claiming    bool // still .new-<id>: being created, not yet a task
	Started     time.Time
	Plan        *launch.Plan // nil before the plan was written
}

// ListTasks lists the task directories, those in creation included (their
// ID starts with newTaskPrefix), and probes each one's lock.
func (st State) ListTasks() ([]TaskInfo, error) {
	entries, err := os.ReadDir(st.Tasks())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	var out []TaskInfo
	for _, ent := range entries {
		if !ent.IsDir() {
			continue
		}
		t := TaskInfo{ID: ent.Name(), Dir: filepath.Join(st.Tasks(), ent.Name()), Claiming: strings.HasPrefix(ent.Name(), newTaskPrefix)}
		lock, err := tryLockDir(t.Dir)
		switch {
		case err == nil:
			lock.Close()
		case errors.Is(err, unix.EWOULDBLOCK):
			t.Alive = true
		default:
			continue // gone meanwhile (ended, renamed into place)
		}
		if data, err := os.ReadFile(filepath.Join(t.Dir, "pid")); err == nil {
			t.PID, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		_, err = os.Lstat(filepath.Join(t.Dir, keepFile))
		t.Kept = err == nil
		if fi, err := ent.Info(); err == nil {
			t.Started = fi.ModTime()
		}
		t.Plan, _ = launch.Read(t.Dir)
		out = append(out, t)
	}
	return out, nil
}

// CollectStale is the automatic collection at the start of a run: it
// removes the dead tasks that are not kept and returns their ids.
func (st State) CollectStale() ([]string, error) {
	removed, err := st.Collect(false)
	var ids []string
	for _, t := range removed {
		ids = append(ids, t.ID)
	}
	return ids, err
}

// Collect removes the dead tasks, the kept ones too with kept, each
// while holding its lock: a task is removed only when provably dead, and
// a loftd that starts meanwhile cannot take it over.
func (st State) Collect(kept bool) ([]TaskInfo, error) {
	tasks, err := st.ListTasks()
	if err != nil {
		return nil, err
	}
	var removed []TaskInfo
	var errs []error
	for _, t := range tasks {
		if t.Alive || (t.Kept && !kept) {
			continue
		}
		lock, err := tryLockDir(t.Dir)
		if err != nil {
			continue // claimed since ListTasks, or gone
		}
		err = RemoveTaskDir(t.Dir)
		lock.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, t)
	}
	return removed, errors.Join(errs...)
}

// RemoveTaskDir removes a task directory and its root, whatever backend
// made it (snapshot, overlay mount, plain tree).
func RemoveTaskDir(dir string) error {
	return errors.Join(rootfs.RemoveTaskRoot(dir), os.RemoveAll(dir))
}

package review

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Request is one apply: the layers, when the run started, and the paths
// to apply (none: all).
type Request struct {
	Layers
	// Since is when the run's overlay was mounted (CLOCK_REALTIME_COARSE,
	// see StartTime). A workspace entry whose ctime is not before it was
	// changed on the host during or after the run.
	Since time.Time
	Paths []string
}

// Problem is a change that was not applied, and why.
type Problem struct {
	Change
	Reason string `json:"reason"`
}

// Outcome is what an apply did.
type Outcome struct {
	Applied   []Change  `json:"applied"`
	Conflicts []Problem `json:"conflicts"` // changed on the host since the run started
	Failed    []Problem `json:"failed"`    // could not be written (a symlink on the way, say)
	Skipped   []Change  `json:"skipped"`   // unsupported entries
}

// ErrNoSuchPath: a path given to Apply names no change of the run.
var ErrNoSuchPath = errors.New("no change of the run at this path")

// StartTime is the time to record as a run's start. ctime is stamped from
// the kernel's coarse clock, which may lag a fine-grained clock by a tick:
// a host write just after a fine-grained start could carry an earlier
// ctime and escape detection. Against the coarse clock it cannot; a write
// in the same tick just before the start counts as a change (a false
// conflict, never a lost edit).
func StartTime() time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &ts); err != nil {
		return time.Now().Add(-time.Second)
	}
	return time.Unix(ts.Unix())
}

// Apply lands the selected changes in the workspace. A change whose
// workspace entry the host changed since r.Since is a conflict and is left
// alone; the rest are applied. Applied changes need no bookkeeping: the
// workspace then equals the upper layer there, so the next Scan no longer
// lists them.
func Apply(r Request) (Outcome, error) {
	out := Outcome{Applied: []Change{}, Conflicts: []Problem{}, Failed: []Problem{}, Skipped: []Change{}}
	all, err := Scan(r.Layers)
	if err != nil {
		return out, err
	}
	sel, err := selectChanges(all, r.Paths)
	if err != nil {
		return out, err
	}
	a, err := newApplier(r)
	if err != nil {
		return out, err
	}
	defer a.close()
	for _, c := range sel {
		if c.Kind == Unsupported {
			out.Skipped = append(out.Skipped, c)
			continue
		}
		if why := a.conflict(c); why != "" {
			out.Conflicts = append(out.Conflicts, Problem{c, why})
			continue
		}
		if err := a.apply(c); err != nil {
			out.Failed = append(out.Failed, Problem{c, err.Error()})
			continue
		}
		out.Applied = append(out.Applied, c)
	}
	return out, nil
}

// selectChanges keeps the changes the paths select, parents before
// children (a new directory before its files).
func selectChanges(all []Change, paths []string) ([]Change, error) {
	var sel []Change
	for _, p := range paths {
		if !slicesAny(all, func(c Change) bool { return c.Touches(p) }) {
			return nil, fmt.Errorf("%s: %w", Show(p), ErrNoSuchPath)
		}
	}
	for _, c := range all {
		if len(paths) == 0 || slicesAny(paths, c.Touches) {
			sel = append(sel, c)
		}
	}
	sort.SliceStable(sel, func(i, j int) bool { return sel[i].Path < sel[j].Path })
	return sel, nil
}

func slicesAny[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if f(v) {
			return true
		}
	}
	return false
}

type applier struct {
	up, ws   int
	since    time.Time
	uid, gid int  // the workspace owner, for what apply creates
	chown    bool // running as (namespace) root: hand new entries to the owner
}

func newApplier(r Request) (*applier, error) {
	up, err := openRoot(r.Upper)
	if err != nil {
		return nil, err
	}
	ws, err := openRoot(r.Workspace)
	if err != nil {
		unix.Close(up)
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(ws, &st); err != nil {
		unix.Close(up)
		unix.Close(ws)
		return nil, err
	}
	return &applier{up: up, ws: ws, since: r.Since, uid: int(st.Uid), gid: int(st.Gid), chown: os.Geteuid() == 0}, nil
}

func (a *applier) close() {
	unix.Close(a.up)
	unix.Close(a.ws)
}

// conflict says why c must not be applied, or "".
func (a *applier) conflict(c Change) string {
	check := []string{c.Path}
	if c.Kind == Renamed {
		check = []string{c.Path, c.From}
	}
	for _, p := range check {
		// A directory's mode change writes no entry: its ctime moves with
		// every file the host adds or removes in it, which is no conflict.
		tree := c.Kind == Deleted || c.Kind == Replaced
		if c.Kind == ModeChanged && c.Type == Dir {
			continue
		}
		if p2, when := a.changedSince(p, tree); p2 != "" {
			return fmt.Sprintf("%s changed on the host since the run started (ctime %s)", Show(p2), when.Format(time.RFC3339Nano))
		}
	}
	return ""
}

// changedSince returns the first entry at rel (and below it, for tree) the
// host changed since a.since.
func (a *applier) changedSince(rel string, tree bool) (string, time.Time) {
	st, err := lstatBeneath(a.ws, rel)
	if err != nil {
		return "", time.Time{}
	}
	if ct := time.Unix(st.Ctim.Unix()); !ct.Before(a.since) {
		return rel, ct
	}
	if !tree || fileType(st.Mode) != unix.S_IFDIR {
		return "", time.Time{}
	}
	names, err := readDirNames(a.ws, rel)
	if err != nil {
		return rel, time.Now() // unreadable: never delete blind
	}
	for _, n := range names {
		if p, ct := a.changedSince(joinRel(rel, n), true); p != "" {
			return p, ct
		}
	}
	return "", time.Time{}
}

func (a *applier) apply(c Change) error {
	switch c.Kind {
	case Deleted:
		return a.remove(c.Path)
	case Replaced:
		if err := a.remove(c.Path); err != nil {
			return err
		}
		return a.create(c)
	case Renamed:
		if err := a.create(c); err != nil {
			return err
		}
		return a.remove(c.From)
	case ModeChanged:
		return a.chmod(c)
	case Added, Modified:
		return a.create(c)
	}
	return fmt.Errorf("%s: cannot apply a %s change", Show(c.Path), c.Kind)
}

// parent opens the workspace directory that holds rel, making the missing
// directories on the way (with the upper layer's modes). A symlink on the
// way is an error, never followed.
func (a *applier) parent(rel string) (int, string, error) {
	dir, base := splitRel(rel)
	fd, err := unix.Dup(a.ws)
	if err != nil {
		return -1, "", err
	}
	walked := ""
	for _, comp := range strings.Split(dir, "/") {
		if comp == "" {
			continue
		}
		walked = joinRel(walked, comp)
		next, err := openBeneath(fd, comp, unix.O_PATH|unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOENT) {
			mode := uint32(0o755)
			if st, serr := lstatBeneath(a.up, walked); serr == nil && fileType(st.Mode) == unix.S_IFDIR {
				mode = st.Mode & 0o777
			}
			if err = unix.Mkdirat(fd, comp, mode); err == nil || errors.Is(err, unix.EEXIST) {
				a.own(fd, comp)
				next, err = openBeneath(fd, comp, unix.O_PATH|unix.O_DIRECTORY)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, "", fmt.Errorf("workspace directory %s: %w (a symlink or file on the host there is never written through)", Show(walked), err)
		}
		fd = next
	}
	return fd, base, nil
}

func (a *applier) own(dfd int, name string) {
	if a.chown {
		_ = unix.Fchownat(dfd, name, a.uid, a.gid, unix.AT_SYMLINK_NOFOLLOW)
	}
}

// create writes the upper entry c.Path into the workspace.
func (a *applier) create(c Change) error {
	dfd, base, err := a.parent(c.Path)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	switch c.Type {
	case Dir:
		err := unix.Mkdirat(dfd, base, uint32(c.NewMode.Perm()))
		if errors.Is(err, unix.EEXIST) {
			return a.chmodAt(dfd, base, c)
		}
		if err == nil {
			a.own(dfd, base)
			err = a.chmodAt(dfd, base, c) // past the umask
		}
		return wrap("mkdir", c.Path, err)
	case Symlink:
		return a.replaceWith(dfd, base, c, func(tmp string) error {
			return unix.Symlinkat(c.Target, dfd, tmp)
		})
	case File:
		return a.replaceWith(dfd, base, c, func(tmp string) error { return a.copyFile(dfd, tmp, c) })
	}
	return fmt.Errorf("%s: cannot create a %s", Show(c.Path), c.Type)
}

// replaceWith makes the new entry under a temporary name and renames it
// over base: a reader never sees half a file, and a symlink at base is
// replaced, not followed.
func (a *applier) replaceWith(dfd int, base string, c Change, make func(tmp string) error) error {
	tmp := ".loftd-apply-" + fmt.Sprint(os.Getpid()) + "-" + fmt.Sprint(time.Now().UnixNano())
	if err := make(tmp); err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return wrap("write", c.Path, err)
	}
	a.own(dfd, tmp)
	if err := unix.Renameat(dfd, tmp, dfd, base); err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return wrap("rename", c.Path, err)
	}
	return nil
}

func (a *applier) copyFile(dfd int, tmp string, c Change) error {
	src, err := openFile(a.up, c.Path)
	if err != nil {
		return err
	}
	defer src.Close()
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	dst := os.NewFile(uintptr(fd), tmp)
	_, err = io.Copy(dst, src)
	if err == nil {
		// Never a set-id bit from the guest: only rwx for all three.
		err = dst.Chmod(c.NewMode.Perm())
	}
	return errors.Join(err, dst.Close())
}

func (a *applier) chmod(c Change) error {
	dfd, base, err := a.parent(c.Path)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	return a.chmodAt(dfd, base, c)
}

func (a *applier) chmodAt(dfd int, base string, c Change) error {
	fd, err := openBeneath(dfd, base, unix.O_RDONLY)
	if err != nil {
		return wrap("chmod", c.Path, err)
	}
	defer unix.Close(fd)
	mode := uint32(c.NewMode.Perm())
	if c.NewMode&os.ModeSticky != 0 && c.Type == Dir {
		mode |= unix.S_ISVTX
	}
	return wrap("chmod", c.Path, unix.Fchmod(fd, mode))
}

// remove deletes rel from the workspace, a directory with its contents,
// fd-relative: a symlink is removed, never followed.
func (a *applier) remove(rel string) error {
	dfd, base, err := a.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	return wrap("remove", rel, removeAt(dfd, base))
}

func removeAt(dfd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if fileType(st.Mode) != unix.S_IFDIR {
		return unix.Unlinkat(dfd, name, 0)
	}
	names, err := readDirNames(dfd, name)
	if err != nil {
		return err
	}
	sub, err := openBeneath(dfd, name, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(sub)
	for _, n := range names {
		if err := removeAt(sub, n); err != nil {
			return err
		}
	}
	return unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR)
}

func wrap(op, rel string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: Show(rel), Err: err}
}

package disks

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrLocked: the workspace lock is held by another VM or maintenance
// command. The error carrying it is a *LockedError naming the holders.
var ErrLocked = errors.New("workspace lock is held")

// Flock is a held workspace lock. It is released by Close, or when the
// process exits.
type Flock struct {
	f *os.File
}

// Lock takes the workspace lock file at path (creating it if needed)
// without waiting: shared for a running VM, exclusive for resize and reset,
// which must not run while any VM has the disks attached. A refusal is a
// *LockedError (errors.Is(err, ErrLocked)) that names the holding processes.
//
// The lock is an flock(2) on the file, so it belongs to this open file
// description: it is not inherited across exec (the descriptor is
// close-on-exec), and two Locks in one process conflict like two processes.
func Lock(path string, exclusive bool) (*Flock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock workspace: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.EWOULDBLOCK {
		holders, herr := lockHolders(f)
		f.Close()
		return nil, &LockedError{Path: path, Holders: holders, LookupErr: herr}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock workspace: %w", &os.PathError{Op: "flock", Path: path, Err: err})
	}
	return &Flock{f: f}, nil
}

// Close releases the lock. Closing twice is harmless.
func (l *Flock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// LockedError says who holds a workspace lock that Lock could not take.
type LockedError struct {
	Path string
	// Holders are the processes /proc/locks shows holding the lock. It may
	// be empty: a holder in another PID namespace, or one that handed the
	// descriptor to a child and exited, cannot be named.
	Holders []Holder
	// LookupErr is why the holders could not be found, if they could not.
	LookupErr error
}

// Holder is one process holding the lock.
type Holder struct {
	Pid       int
	Cmdline   string // arguments joined by spaces; empty if unreadable
	Exclusive bool
}

func (e *LockedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "workspace lock %s is held by ", e.Path)
	if len(e.Holders) == 0 {
		b.WriteString("another process")
		if e.LookupErr != nil {
			fmt.Fprintf(&b, " (cannot tell which: %v)", e.LookupErr)
		}
	}
	for i, h := range e.Holders {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "pid %d", h.Pid)
		if h.Cmdline != "" {
			fmt.Fprintf(&b, " (%s)", h.Cmdline)
		}
	}
	b.WriteString("; wait for it to finish or stop it")
	return b.String()
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

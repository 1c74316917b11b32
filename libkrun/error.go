package libkrun

import (
	"fmt"
	"strings"
	"syscall"
)

// Error is a failed krun_* call: libkrun returned -Errno.
type Error struct {
	Op    string // the C function, e.g. "krun_add_disk"
	Errno syscall.Errno
}

func (e *Error) Error() string { return e.Op + ": " + e.Errno.Error() }

// Unwrap gives the errno, so errors.Is(err, syscall.EINVAL) works.
func (e *Error) Unwrap() error { return e.Errno }

// check turns a libkrun return value into an error.
func check(op string, ret int32) error {
	if ret < 0 {
		return &Error{Op: op, Errno: syscall.Errno(-ret)}
	}
	return nil
}

// errMissing is what a method of an absent optional symbol returns.
func (l *Lib) errMissing(op string) error {
	return fmt.Errorf("%s: not in libkrun %s (a newer libkrun has it)", op, l.path)
}

// cString copies s into Go memory with a terminating NUL. The caller keeps
// the result alive (runtime.KeepAlive) until the C call returns.
func cString(op, s string) (*byte, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, fmt.Errorf("%s: argument %q contains a NUL byte", op, s)
	}
	b := make([]byte, len(s)+1)
	copy(b, s)
	return &b[0], nil
}

// cStringArray builds a NULL-terminated char* array in Go memory. A nil
// slice becomes a NULL pointer, which means something different from an empty
// array to several krun_* calls (see SetPortMap, SetExec, SetEnv). The array
// references every string, so keeping the returned pointer alive keeps them.
func cStringArray(op string, ss []string) (**byte, error) {
	if ss == nil {
		return nil, nil
	}
	arr := make([]*byte, len(ss)+1)
	for i, s := range ss {
		p, err := cString(op, s)
		if err != nil {
			return nil, err
		}
		arr[i] = p
	}
	return &arr[0], nil
}

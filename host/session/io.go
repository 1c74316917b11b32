// Package session is loftd's session engine, below the command line
// (host): options and config → state, disks, task, root, guest config →
// launch plan → helper, supervised → exit status → cleanup, and the
// maintenance VM that resize and reset-nix boot. It gets the process's
// streams, environment and logger as an IO, and never imports host.
package session

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// IO is what the engine may use of the process: its streams, its
// environment and the logger. The command line passes its own; tests pass
// buffers and a fake environment.
type IO struct {
	Prog   string // the program's name in messages: "loftd" or "agentbox"
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	Log    *slog.Logger
}

// Exit statuses of loftd itself (the workload's own status passes through).
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 2
	ExitSetup = 125
)

// ErrUsage marks a command-line mistake: one-line error plus usage, exit 2.
var ErrUsage = errors.New("usage")

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
func (e usageError) Is(t error) bool {
	return t == ErrUsage
}

// Usagef is a usage error (errors.Is(err, ErrUsage)).
func Usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// ExitError carries a specific exit status (with an optional message).
type ExitError struct {
	Status int
	Err    error
}

func (e ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Status)
	}
	return e.Err.Error()
}

// NewLogger logs text to w, at debug level when debug is set.
func NewLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

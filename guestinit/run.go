package guestinit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"

	"github.com/loftd/loftd/guestinit/contract"
)

// defaultShell runs when the host gave no command (the user's login shell
// comes with the privilege drop).
const defaultShell = "/bin/sh"

func (e *enter) command() []string {
	if len(e.cmd) == 0 {
		return []string{defaultShell}
	}
	return e.cmd
}

// runWorkload runs the command as a child with the init's environment and
// the config's WorkingDir, and records its status as a shell would.
func (e *enter) runWorkload() error {
	dir := e.cfg.WorkingDir
	if dir == "" {
		dir = "/"
	}
	// Checked here so a bad WorkingDir is a setup error (125), not the
	// "not found" its ENOENT would become after exec.
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("working directory: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("working directory %s: not a directory", dir)
	}
	e.status = runCommand(e.command(), dir, os.Stderr)
	return nil
}

// runCommand runs argv in dir with this process's stdio and environment and
// returns its status: the exit code verbatim, 128+n for signal n, 127 when
// the command is not found, 126 when it cannot be executed.
func runCommand(argv []string, dir string, stderr *os.File) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, stderr
	if err := cmd.Start(); err != nil {
		status := startStatus(err)
		fmt.Fprintf(stderr, "guest-init: %s: %v\n", argv[0], err)
		return status
	}
	err := cmd.Wait()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		fmt.Fprintf(stderr, "guest-init: wait %s: %v\n", argv[0], err)
		return contract.ExitSetup
	}
	return waitStatus(cmd.ProcessState.Sys().(syscall.WaitStatus))
}

func startStatus(err error) int {
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return contract.ExitNotFound
	default:
		// EACCES, ENOEXEC, a directory...: found but not executable.
		return contract.ExitNotExecutable
	}
}

func waitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return contract.ExitSignalBase + int(ws.Signal())
	}
	return ws.ExitStatus()
}

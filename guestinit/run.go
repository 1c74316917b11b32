package guestinit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"syscall"

	"github.com/loftd/loftd/contract"
	"golang.org/x/sys/unix"
)

// defaultShell is the login shell when the user step found none.
const defaultShell = "/bin/sh"

// command is the workload: the host's command, else the user's login
// shell (user.go).
func (e *enter) command() []string {
	if len(e.cmd) == 0 {
		return e.loginShell()
	}
	return e.cmd
}

// runWorkload runs the command as a child with the init's environment in
// the contract's workdir, and records its status as a shell would. Its
// stdout and stderr are the relay's pipes under QEMU, else the init's own.
func (e *enter) runWorkload() error {
	dir := e.workdir()
	// Checked here so a bad WorkingDir is a setup error (125), not the
	// "not found" its ENOENT would become after exec.
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("working directory: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("working directory %s: not a directory", dir)
	}
	cred, err := e.dropCred() // user.go
	if err != nil {
		return err
	}
	if e.ctl != nil {
		if err := e.ctl.started(); err != nil {
			return err
		}
	}
	files := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	var attr *syscall.SysProcAttr
	if e.relay != nil {
		files[1], files[2] = e.relay.out.w, e.relay.err.w
	}
	var held *os.File // the held session's pty slave (live.go)
	if e.live != nil && e.live.held != nil {
		held = e.live.slave
	}
	if e.pty != nil || held != nil {
		// A session of its own with the pty as controlling terminal, so
		// the line discipline's ^C/^Z/^\ and SIGWINCH reach its
		// foreground process group.
		slave := held
		if slave == nil {
			slave = e.pty.slave
		}
		files = []*os.File{slave, slave, slave}
		attr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}
	if cred != nil {
		if attr == nil {
			attr = &syscall.SysProcAttr{}
		}
		attr.Credential = cred
	}
	if !e.pid1 {
		// Under libkrun the orphans of the workload come to this process
		// rather than to libkrun's init, and are reaped below.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	verify := func(pid int) error {
		if held != nil {
			// Only the main command holds the slave: the master reads
			// EIO once it and its children are gone.
			held.Close()
		}
		if cred != nil {
			return verifyDropped(pid, int(cred.Uid), int(cred.Gid))
		}
		return nil
	}
	var ws syscall.WaitStatus
	t0 := e.sys.Now()
	e.status = runStatus(e.command(), dir, files, attr, verify, e.errw(), &ws)
	t1 := e.sys.Now()
	if held != nil {
		// Attached clients get the output to its end, then the status.
		e.live.held.End(ws)
	}
	// The VM end rule: open nested connections (or a detached VM) keep
	// it up, and what they run with it (live.go).
	e.awaitEnd()
	t2 := e.sys.Now()
	if e.relay != nil {
		e.relay.drain(e.pid1)
	}
	if e.pty != nil {
		e.pty.drain(e.pid1)
	}
	// The workload's share of the run step, and what the end costs after
	// it: the profile's view of the end protocol's guest side.
	e.logf("guest-init: workload start to exit %s; end rule %s; drain output %s",
		ms(t1.Sub(t0)), ms(t2.Sub(t1)), ms(e.sys.Now().Sub(t2)))
	return nil
}

// workdir is LOFTD_WORKDIR, applied here, after the mounts: the config's
// WorkingDir is what libkrun's init chdirs to before it runs this init, when
// /workspace is not mounted yet. A host that set only WorkingDir still gets it.
func (e *enter) workdir() string {
	for _, dir := range []string{e.guest.Workdir, e.cfg.WorkingDir} {
		if dir != "" {
			return dir
		}
	}
	return "/"
}

// runCommand runs argv in dir with files as its stdin, stdout and stderr,
// attr (may be nil) and this process's environment, and returns its status: the exit code
// verbatim, 128+n for signal n, 127 when the command is not found, 126 when
// it cannot be executed. The init's reaper waits for it (reap.go), and
// reaps every orphan meanwhile.
func runCommand(argv []string, dir string, files []*os.File, attr *syscall.SysProcAttr, stderr io.Writer) int {
	return runChecked(argv, dir, files, attr, nil, stderr)
}

// runChecked is runCommand with verify (may be nil) run on the started
// process before it is waited for: os.StartProcess returns once the child
// has exec'd, so what verify reads of it is final. A verify error kills
// the process (SIGKILL) and gives the setup status.
func runChecked(argv []string, dir string, files []*os.File, attr *syscall.SysProcAttr, verify func(pid int) error, stderr io.Writer) int {
	var ws syscall.WaitStatus
	return runStatus(argv, dir, files, attr, verify, stderr, &ws)
}

// runStatus is runChecked that also sets *ws to the wait status it
// returns the status of (an exit with that status when nothing ran).
func runStatus(argv []string, dir string, files []*os.File, attr *syscall.SysProcAttr, verify func(pid int) error, stderr io.Writer, ws *syscall.WaitStatus) int {
	status := func(n int) int {
		*ws = syscall.WaitStatus(n << 8) // an exit with n
		return n
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(stderr, "guest-init: %v\n", err)
		return status(startStatus(err))
	}
	// Gated: a command that ends at once stays a zombie, its /proc
	// entry there for verify, until verify is done.
	pid, done, release, err := initReaper.startGated(path, argv, &os.ProcAttr{Dir: dir, Env: os.Environ(), Files: files, Sys: attr})
	if err != nil {
		fmt.Fprintf(stderr, "guest-init: %s: %v\n", argv[0], err)
		return status(startStatus(err))
	}
	if verify != nil {
		if err := verify(pid); err != nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			release()
			<-done
			fmt.Fprintf(stderr, "guest-init: %s: %v\n", argv[0], err)
			return status(contract.ExitSetup)
		}
	}
	release()
	*ws = <-done
	return waitStatus(*ws)
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

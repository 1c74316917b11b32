// Package child owns the lifecycle of the processes loftd starts and must
// not leave behind (the helper, QEMU, virtiofsd, passt): Start, with a
// parent-death signal, from a thread that lives as long as the child, in
// its own process group where wanted; Stop, which sends SIGTERM, waits a
// grace period, sends SIGKILL and reaps. DieWithParent is the other side,
// for a child that changes its credentials (which clears the parent-death
// signal) or wants to check that its parent is still there.
//
// It imports nothing of loftd.
package child

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Options say how a child is tied to loftd.
type Options struct {
	// DeathSignal is what the kernel sends the child when its parent
	// dies (Pdeathsig). SIGKILL for a process that holds nothing to clean
	// up; SIGTERM for one that has cleanup of its own to run. The kernel
	// clears it when the child changes its uid or gid: such a child sets
	// it again itself (DieWithParent), or has another way to end (passt's
	// socket closing).
	DeathSignal syscall.Signal
	// OwnGroup starts the child in a process group of its own, so that a
	// terminal's ^C reaches loftd, which decides how the child ends,
	// rather than the child directly.
	OwnGroup bool
}

// Process is a started child. Its Wait runs on the thread that started it
// (see Start), and ends once the child has been reaped.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returned
	err  error         // cmd.Wait's error, set before done closes
}

// Start starts cmd with opts, which set cmd.SysProcAttr's Pdeathsig and
// Setpgid (its other fields stay the caller's), and returns it running;
// name is for errors. The parent-death signal fires
// when the *thread* that forked the child ends, not the process, and the Go
// runtime ends a thread whose goroutine exits while locked to it: so cmd is
// started and waited for by a goroutine locked to its thread, which ends
// (with the thread) only once the child is reaped.
func Start(name string, cmd *exec.Cmd, opts Options) (*Process, error) {
	return StartFunc(name, cmd, cmd.Start, opts)
}

// StartFunc is Start for a cmd that a wrapper starts: start calls
// cmd.Start and does its own work around it (containers/storage's
// unshare.Cmd.Start writes the child's id maps).
func StartFunc(name string, cmd *exec.Cmd, start func() error, opts Options) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = opts.DeathSignal
	cmd.SysProcAttr.Setpgid = opts.OwnGroup
	p := &Process{name: name, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends after the reaping
		if err := start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the child has been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits until the child has been reaped and returns cmd.Wait's error;
// cmd.ProcessState then holds how it ended.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Exited reports whether the child has been reaped, and then cmd.Wait's
// error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Signal sends sig to the child, unless it has been reaped.
func (p *Process) Signal(sig os.Signal) error {
	if done, _ := p.Exited(); done {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Stop ends the child: SIGTERM, up to grace for it to exit, then SIGKILL.
// It returns once the child has been reaped (at once if it already was).
func (p *Process) Stop(grace time.Duration) error {
	if done, _ := p.Exited(); done {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", p.name, p.Pid(), err)
	}
	<-p.done
	return nil
}

// DieWithParent is for a child process: it asks the kernel for sig when
// its parent dies, and fails when the parent (pid parent, as the parent
// told it) is already gone, having died before the request. A child
// started with a DeathSignal calls it again after it changed its uid or
// gid, which cleared the first. The request belongs to the calling thread
// (the kernel then signals the whole process), so it is made from a thread
// locked for the life of the process.
func DieWithParent(sig syscall.Signal, parent int) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must live as long as the process
		errc <- unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(sig), 0, 0, 0)
		select {}
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", err)
	}
	if ppid := os.Getppid(); ppid != parent {
		return fmt.Errorf("parent (pid %d) is gone", parent)
	}
	return nil
}

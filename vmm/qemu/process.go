package qemu

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is a process Run started; it is killed and reaped by pid.
type child struct {
	name string
	log  string // where its stdout and stderr go
	cmd  *exec.Cmd
	done chan struct{} // closed once Wait returned
	err  error
}

// start starts cmd with Pdeathsig, so the child dies with the thread that
// started it even if this process is killed outright, and in its own
// process group, so a terminal's ^C reaches loftd (which decides how the VM
// ends) rather than QEMU and virtiofsd directly.
func start(name string, cmd *exec.Cmd, logPath string) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig, cmd.SysProcAttr.Setpgid = syscall.SIGKILL, true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs, and waits for the
// reaping. It returns only once the process is gone.
func (c *child) stop(grace time.Duration) error {
	if c.exited() {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return nil
	case <-time.After(grace):
	}
	if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", c.name, c.cmd.Process.Pid, err)
	}
	<-c.done
	return nil
}

// Pid returns the child's process id.
func (c *child) Pid() int { return c.cmd.Process.Pid }

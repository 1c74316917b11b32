package qemu

import (
	"os"
	"os/exec"
	"syscall"

	"github.com/loftd/loftd/internal/child"
)

// proc is a child of the run (QEMU or a virtiofsd) with its log.
type proc struct {
	*child.Process
	name string
	log  string // where its stdout and stderr go
}

// start starts cmd as a child (internal/child) that gets SIGKILL when the
// helper dies, in its own process group, so a terminal's ^C reaches loftd
// (which decides how the VM ends) rather than QEMU and virtiofsd directly.
func start(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := child.Start(name, cmd, child.Options{DeathSignal: syscall.SIGKILL, OwnGroup: true})
	if err != nil {
		return nil, err
	}
	return &proc{Process: p, name: name, log: logPath}, nil
}

// exitErr is how the process ended (nil for status 0, or while it runs).
func (p *proc) exitErr() error {
	_, err := p.Exited()
	return err
}

package guestinit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/loftd/loftd/contract"
	"golang.org/x/sys/unix"
)

// Under the QEMU backend with a terminal on the host (contract.EnvTTY) the
// workload runs on a pty: the init holds the master and relays the
// krun-stdin port into it and its output to the krun-stdout port, counting
// bytes as the pipe relay does, so the status/ack protocol is the same
// (stderr merges into the pty as in any terminal; the stderr count is the
// init's own messages). Echo, line editing and ^C/^Z/^\ come from the
// guest's line discipline; the host terminal is raw and passes bytes.

// sizeWait bounds the wait for the host's first window size before the
// workload starts, so a shell's first `stty size` is already right; a host
// that sends none only leaves the pty at 0x0.
const sizeWait = 2 * time.Second

// pty is the init's side of the workload's terminal.
type pty struct {
	master    *os.File // pollable: closing it ends a pending Read
	slave     *os.File // blocking: it becomes the workload's fds 0, 1, 2
	out       *counter
	done      chan struct{}
	closeOnce sync.Once
}

// openPty opens a new pty from the devpts instance the init mounted
// (newinstance, so /dev/pts/ptmx is its multiplexer; /dev/ptmx is tried
// when that is missing) and unlocks its slave.
func openPty(sysRoot string) (*pty, error) {
	var master *os.File
	var err error
	for _, p := range []string{"dev/pts/ptmx", "dev/ptmx"} {
		master, err = os.OpenFile(filepath.Join(sysRoot, p), os.O_RDWR|unix.O_NOCTTY, 0)
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open pty master: %w", err)
	}
	var n int
	err = fdControl(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlock pty: %w", err)
		}
		var err error
		if n, err = unix.IoctlGetInt(fd, unix.TIOCGPTN); err != nil {
			return fmt.Errorf("pty number: %w", err)
		}
		return nil
	})
	if err != nil {
		master.Close()
		return nil, err
	}
	name := filepath.Join(sysRoot, "dev/pts", fmt.Sprint(n))
	// O_NOCTTY: the init must not make it its own controlling terminal; the
	// workload takes it (setsid + TIOCSCTTY).
	sfd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return &pty{master: master, slave: os.NewFile(uintptr(sfd), name), done: make(chan struct{})}, nil
}

// setSize sets the window size on the master; the kernel sends SIGWINCH to
// the pty's foreground process group when it changed.
func (p *pty) setSize(rows, cols uint16) {
	ws := &unix.Winsize{Row: rows, Col: cols}
	_ = fdControl(p.master, func(fd int) error { return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws) })
}

// fdControl runs do on f's descriptor without File.Fd, which would switch the
// master to blocking mode (then Close no longer ends a pending Read).
func fdControl(f *os.File, do func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = do(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// start relays stdin into the master and the master to out until the
// slave side is gone (EIO on the master is its EOF) or the host asked to
// close the stream.
func (p *pty) start(stdin io.Reader, out *counter) {
	p.out = out
	go func() {
		// Ends with the host's stdin (EOF) or with the master; a Read on
		// the port cannot be interrupted, and the VM ends anyway.
		_, _ = io.Copy(p.master, stdin)
	}()
	go func() {
		defer close(p.done)
		buf := make([]byte, 32<<10)
		for {
			n, err := p.master.Read(buf)
			if n > 0 {
				if _, werr := out.Write(buf[:n]); werr != nil {
					p.closeRead()
					return
				}
			}
			if err != nil {
				if !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrClosed) {
					fmt.Fprintf(os.Stderr, "guest-init: pty: %v\n", err)
				}
				return
			}
		}
	}()
}

// closeRead closes the master on the host's "close stdout": the session
// gets SIGHUP and the workload's writes fail, as when a terminal goes away.
func (p *pty) closeRead() { p.closeOnce.Do(func() { p.master.Close() }) }

// drain runs once the workload has been reaped: the init drops its slave,
// as PID 1 kills what the workload left running (it could hold the slave
// open), and waits until the master has been copied to the end.
func (p *pty) drain(pid1 bool) {
	p.slave.Close()
	if pid1 {
		_ = syscall.Kill(-1, syscall.SIGKILL)
	}
	<-p.done
	p.closeRead()
}

// wirePty replaces the pipe relay with a pty when the host has a terminal:
// the host's window sizes apply to it (waiting briefly for the first), and
// a close request for stdout closes it.
func (e *enter) wirePty(ctl *control) error {
	p, err := openPty(e.sys.SysRoot)
	if err != nil {
		return err
	}
	ctl.setStream(contract.CtlCloseStdout, p)
	ctl.setResize(p.setSize)
	select {
	case <-ctl.sized:
	case <-time.After(sizeWait):
		fmt.Fprintf(e.errw(), "guest-init: no window size from the host after %s\n", sizeWait)
	}
	p.start(os.Stdin, e.stdout)
	e.pty = p
	return nil
}

package sshd

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenPTY opens a new pty: the master (pollable, so a deadline or Close
// ends a pending Read) and its slave (blocking: a child's fds). The
// guest's devpts is a newinstance mount, so /dev/pts/ptmx comes first.
func OpenPTY() (master, slave *os.File, err error) {
	for _, p := range []string{"/dev/pts/ptmx", "/dev/ptmx"} {
		master, err = os.OpenFile(p, os.O_RDWR|unix.O_NOCTTY, 0)
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open pty master: %w", err)
	}
	var n int
	err = control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlock pty: %w", err)
		}
		var err error
		n, err = unix.IoctlGetInt(fd, unix.TIOCGPTN)
		return err
	})
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	// Through the master, not by name: the right devpts instance whatever
	// is mounted at /dev/pts.
	var sfd int
	err = control(master, func(fd int) error {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
		if errno != 0 {
			return errno
		}
		sfd = int(r)
		return nil
	})
	if err != nil {
		name := fmt.Sprintf("/dev/pts/%d", n)
		sfd, err = unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			master.Close()
			return nil, nil, fmt.Errorf("open pty slave %s: %w", name, err)
		}
	}
	return master, os.NewFile(uintptr(sfd), fmt.Sprintf("/dev/pts/%d", n)), nil
}

// SetWinsize sets a pty's window size through its master; the kernel
// sends SIGWINCH to its foreground process group when it changed.
func SetWinsize(master *os.File, cols, rows uint32) {
	ws := &unix.Winsize{Col: uint16(min(cols, 0xffff)), Row: uint16(min(rows, 0xffff))}
	_ = control(master, func(fd int) error { return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws) })
}

// control runs do on f's descriptor without File.Fd (which would make it
// blocking).
func control(f *os.File, do func(fd int) error) error {
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

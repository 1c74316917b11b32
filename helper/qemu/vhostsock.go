package qemu

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// vhostUserSocket makes share i's vhost-user socket in dir: a listening
// socket for virtiofsd (its --fd) and QEMU's end, already connected to it
// (QEMU's -chardev socket,fd=N), so QEMU is never given the socket's path.
// The socket is named through /proc/self/fd/DIRFD, so dir's length does not
// count against sun_path's 108 bytes, and unlinked once connected: no other
// process can reach virtiofsd through it.
func vhostUserSocket(dir string, i int) (listener, conn *os.File, err error) {
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open vhost-user socket dir", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	name := fmt.Sprintf("vfs%d.sock", i)
	addr := &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d/%s", dfd, name)}
	_ = unix.Unlinkat(dfd, name, 0)
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("vhost-user socket", err)
	}
	listener = os.NewFile(uintptr(lfd), name)
	cfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		listener.Close()
		return nil, nil, os.NewSyscallError("vhost-user socket", err)
	}
	conn = os.NewFile(uintptr(cfd), name+" (qemu)")
	fail := func(op string, err error) (*os.File, *os.File, error) {
		listener.Close()
		conn.Close()
		_ = unix.Unlinkat(dfd, name, 0)
		return nil, nil, fmt.Errorf("vhost-user socket %s in %s: %w", name, dir, os.NewSyscallError(op, err))
	}
	if err := unix.Bind(lfd, addr); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(lfd, 1); err != nil {
		return fail("listen", err)
	}
	if err := unix.Connect(cfd, addr); err != nil {
		return fail("connect", err)
	}
	if err := unix.Unlinkat(dfd, name, 0); err != nil {
		return fail("unlink", err)
	}
	return listener, conn, nil
}

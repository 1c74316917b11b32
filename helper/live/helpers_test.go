package live

import (
	"net"
	"testing"

	"errors"
	"golang.org/x/sys/unix"
	"os"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }
func mkdirAll(dir string) error           { return os.MkdirAll(dir, 0o700) }

// socketPair is a connected pair like the control port's (net.Pipe would
// deadlock: both SSH ends write their version line first).
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}

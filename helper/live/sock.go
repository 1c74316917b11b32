package live

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxSunPath is what fits in sockaddr_un.sun_path with its NUL: a longer
// path (a deep state directory) is bound and dialled through
// /proc/self/fd/DIRFD/NAME, which the kernel resolves like any path.
const maxSunPath = 107

// listenUnix creates a stream socket at path, mode 0600 (umask-independent:
// it is bound in a 0700 directory and chmod-ed before anyone may connect).
// A stale socket file at path (a crashed helper's) is replaced.
func listenUnix(path string) (*net.UnixListener, error) {
	_ = os.Remove(path)
	var ln *net.UnixListener
	err := viaDir(path, func(p string) error {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			return err
		}
		ln = l
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// Go would unlink p (maybe a /proc/self/fd path that no longer
	// resolves) on Close; the owner removes path itself.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return ln, nil
}

// dialUnix connects to the stream socket at path.
func dialUnix(path string) (*net.UnixConn, error) {
	var c *net.UnixConn
	err := viaDir(path, func(p string) error {
		conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			return err
		}
		c = conn
		return nil
	})
	return c, err
}

// viaDir calls fn with path itself when it fits a sockaddr_un, else with
// /proc/self/fd/N/BASE, N an O_PATH descriptor of path's directory held
// for the call.
func viaDir(path string, fn func(string) error) error {
	if len(path) <= maxSunPath {
		return fn(path)
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	defer unix.Close(fd)
	p := "/proc/self/fd/" + strconv.Itoa(fd) + "/" + filepath.Base(path)
	if len(p) > maxSunPath {
		return fmt.Errorf("socket name %q is too long", filepath.Base(path))
	}
	return fn(p)
}

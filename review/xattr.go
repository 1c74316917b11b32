package review

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// overlayXattrs is what an upper entry's overlay metadata says of it.
type overlayXattrs struct {
	opaque   bool // a directory that hides the lower one's contents
	whiteout bool // an xattr whiteout (Linux 6.7+), not a 0:0 device
	// unsupported names metadata this package does not interpret
	// (a redirect or metacopy: loftd mounts with both off).
	unsupported string
}

// xattrs reads the overlay metadata of the upper entry rel. Only
// directories and regular files carry it; a symlink's own xattrs cannot be
// read without following it, and overlay sets none on one.
func (s *scanner) xattrs(rel string, st unix.Stat_t) (overlayXattrs, error) {
	var x overlayXattrs
	t := fileType(st.Mode)
	if t != unix.S_IFDIR && t != unix.S_IFREG {
		return x, nil
	}
	fd, err := openBeneath(s.up, rel, unix.O_RDONLY)
	if err != nil {
		return x, fmt.Errorf("open %q: %w", rel, err)
	}
	defer unix.Close(fd)
	get := func(name string) (string, bool, error) {
		buf := make([]byte, 256)
		n, err := unix.Fgetxattr(fd, s.prefix+name, buf)
		switch {
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
			return "", false, nil
		case errors.Is(err, unix.ERANGE):
			return "", true, nil // present, longer than any value overlay writes
		case err != nil:
			return "", false, fmt.Errorf("getxattr %q %s%s: %w", rel, s.prefix, name, err)
		}
		return string(buf[:n]), true, nil
	}
	v, ok, err := get("opaque")
	if err != nil {
		return x, err
	}
	x.opaque = ok && v == "y" && t == unix.S_IFDIR
	if _, ok, err = get("whiteout"); err != nil {
		return x, err
	}
	x.whiteout = ok && t == unix.S_IFREG
	for _, name := range []string{"redirect", "metacopy"} {
		_, ok, err := get(name)
		if err != nil {
			return x, err
		}
		if ok {
			x.unsupported = "overlay " + name + " metadata: never applied (loftd mounts review overlays with redirect_dir=nofollow and metacopy off)"
		}
	}
	return x, nil
}

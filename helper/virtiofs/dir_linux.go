package virtiofs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenDir opens the share directory path for virtiofsd, as an O_PATH fd
// the child inherits: a detached, recursive clone of the directory's
// mounts (open_tree OPEN_TREE_CLONE|AT_RECURSIVE), with every mount in it
// made read-only when readOnly. Read-only is then the kernel's rule,
// whatever the guest mounts or remounts. Detached, the directory is the
// clone's root, so its magic link reads "/": the Rust virtiofsd
// canonicalizes its shared directory, and through the directory's host
// path its namespace root could fail to search a private parent (a 0700
// t.TempDir, a home). The clone is gone once the last fd on it closes.
func OpenDir(path string, readOnly bool) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open share", Path: path, Err: err}
	}
	defer unix.Close(fd)
	clone, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return nil, &os.PathError{Op: "open_tree OPEN_TREE_CLONE|AT_RECURSIVE", Path: path, Err: err}
	}
	if readOnly {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(clone, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			unix.Close(clone)
			return nil, &os.PathError{Op: "mount_setattr MOUNT_ATTR_RDONLY", Path: path, Err: err}
		}
	}
	return os.NewFile(uintptr(clone), path+" (detached clone)"), nil
}

// FDPath is how virtiofsd names the directory it inherited as fd n. The
// trailing slash matters: QEMU's C virtiofsd lstat()s its source and
// refuses the magic link itself ("source is not a directory"); with the
// slash the link is followed. Through the link, the kernel checks no
// permission on the directory's parents, which virtiofsd in its user
// namespace may not be able to search.
func FDPath(n int) string { return fdLink(n) + "/" }

// fdLink is fd n's magic link.
func fdLink(n int) string { return fmt.Sprintf("/proc/self/fd/%d", n) }

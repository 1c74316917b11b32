package virtiofs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenDir opens the share directory path for virtiofsd, as an O_PATH fd
// the child inherits. readOnly serves a detached, recursive clone of the
// directory's mounts with every mount in it made read-only: the kernel
// then refuses writes whatever the guest mounts or remounts, and the
// clone is gone once the last fd on it closes.
func OpenDir(path string, readOnly bool) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open share", Path: path, Err: err}
	}
	if !readOnly {
		return os.NewFile(uintptr(fd), path), nil
	}
	defer unix.Close(fd)
	clone, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return nil, &os.PathError{Op: "open_tree OPEN_TREE_CLONE|AT_RECURSIVE", Path: path, Err: err}
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(clone, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		unix.Close(clone)
		return nil, &os.PathError{Op: "mount_setattr MOUNT_ATTR_RDONLY", Path: path, Err: err}
	}
	return os.NewFile(uintptr(clone), path+" (read-only clone)"), nil
}

// FDPath is how virtiofsd names the directory it inherited as fd n. The
// trailing slash matters: QEMU's C virtiofsd lstat()s its source and
// refuses the magic link itself ("source is not a directory"); with the
// slash the link is followed. Through the link, the kernel checks no
// permission on the directory's parents, which virtiofsd in its user
// namespace may not be able to search.
func FDPath(n int) string { return fmt.Sprintf("/proc/self/fd/%d/", n) }

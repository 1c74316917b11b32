package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// btrfs ioctls golang.org/x/sys lacks (linux/btrfs.h).
const (
	btrfsIocSnapCreateV2 = 0x50009417 // _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)
	btrfsIocSnapDestroy  = 0x5000940f // _IOW(0x94, 15, struct btrfs_ioctl_vol_args)
	btrfsFirstFreeIno    = 256        // every subvolume's root directory has this inode
)

// btrfsVolArgsV2 is struct btrfs_ioctl_vol_args_v2 (4096 bytes).
type btrfsVolArgsV2 struct {
	Fd      int64
	Transid uint64
	Flags   uint64
	Unused  [4]uint64
	Name    [4040]byte
}

// btrfsVolArgs is struct btrfs_ioctl_vol_args (4096 bytes).
type btrfsVolArgs struct {
	Fd   int64
	Name [4088]byte
}

// snapshot makes dst a writable snapshot of the subvolume src. O(1): the
// snapshot shares every extent with src until either side writes.
func snapshot(src, dst string) error {
	sfd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: src, Err: err}
	}
	defer unix.Close(sfd)
	parent, name := filepath.Split(filepath.Clean(dst))
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: parent, Err: err}
	}
	defer unix.Close(pfd)
	var args btrfsVolArgsV2
	args.Fd = int64(sfd)
	if len(name) >= len(args.Name) {
		return &fs.PathError{Op: "BTRFS_IOC_SNAP_CREATE_V2", Path: dst, Err: unix.ENAMETOOLONG}
	}
	copy(args.Name[:], name)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(pfd), btrfsIocSnapCreateV2, uintptr(unsafe.Pointer(&args))); errno != 0 {
		return &fs.PathError{Op: "BTRFS_IOC_SNAP_CREATE_V2", Path: dst, Err: errno}
	}
	return nil
}

// isSubvolume reports whether path is the root of a btrfs subvolume.
func isSubvolume(path string) bool {
	var st unix.Stat_t
	if unix.Lstat(path, &st) != nil || st.Ino != btrfsFirstFreeIno || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false
	}
	return onBtrfs(path)
}

// deleteSubvolume removes the subvolume at path. The root is made writable
// first (SNAP_DESTROY refuses a read-only root); when the ioctl is refused
// (EPERM without user_subvol_rm_allowed, ENOTEMPTY with nested subvolumes)
// the tree is removed file by file, which the kernel allows the owner.
func deleteSubvolume(path string) error {
	if err := os.Chmod(path, 0o755); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete subvolume %s: %w", path, err)
	}
	parent, name := filepath.Split(filepath.Clean(path))
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("delete subvolume %s: %w", path, err)
	}
	defer unix.Close(pfd)
	var args btrfsVolArgs
	copy(args.Name[:], name)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(pfd), btrfsIocSnapDestroy, uintptr(unsafe.Pointer(&args)))
	if errno == 0 {
		return nil
	}
	if err := removeTree(path); err != nil {
		return fmt.Errorf("delete subvolume %s (BTRFS_IOC_SNAP_DESTROY: %v): %w", path, errno, err)
	}
	return nil
}

// removeTree is os.RemoveAll that first makes read-only directories
// writable, so trees holding 0555 directories (common in images) go too.
func removeTree(path string) error {
	if err := os.RemoveAll(path); err == nil {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}

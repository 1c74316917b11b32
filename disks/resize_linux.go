package disks

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// btrfsIocResize is BTRFS_IOC_RESIZE, _IOW(0x94, 3, struct
// btrfs_ioctl_vol_args); golang.org/x/sys does not define it.
const btrfsIocResize = 0x50009403

// btrfsVolArgs is struct btrfs_ioctl_vol_args (4096 bytes).
type btrfsVolArgs struct {
	fd   int64
	name [4088]byte
}

// GrowFilesystem grows the btrfs filesystem mounted at mountpoint to fill
// its device ("max" on device 1), as `btrfs filesystem resize max` does.
// It runs in the guest after the host grew the disk file.
func GrowFilesystem(mountpoint string) error {
	d, err := os.OpenFile(mountpoint, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("grow filesystem: %w", err)
	}
	defer d.Close()
	var args btrfsVolArgs
	copy(args.name[:], "max")
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, d.Fd(), btrfsIocResize, uintptr(unsafe.Pointer(&args)))
	if errno != 0 {
		return fmt.Errorf("grow filesystem %s: %w", mountpoint, os.NewSyscallError("ioctl BTRFS_IOC_RESIZE max", errno))
	}
	return nil
}

// Package loop mounts a filesystem image through a loop device. It is used
// by a root resize that grows a disk's filesystem on the host, and by tests
// (a btrfs on a sparse file). Standard library and x/sys only.
package loop

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

var mu sync.Mutex

// Untrusted are the mount flags Mount uses. A workspace disk holds a
// filesystem the guest wrote: the host kernel must honour none of its setuid
// bits, device nodes or executables while it has it mounted. (Parsing a
// guest-written btrfs at all is still a risk; the maintenance VM of a later
// issue removes the host mount.)
const Untrusted = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// Mount mounts img on mnt with the Untrusted flags: see MountFlags.
func Mount(img, mnt, fstype, data string) (string, error) {
	return MountFlags(img, mnt, fstype, Untrusted, data)
}

// MountFlags binds img to a free loop device with autoclear and mounts it on
// mnt, returning the device. The device stays open until the mount holds
// it: autoclear fires on the device's last close (seen on kernel 6.18), so
// a device closed before mount(2) is already unbound and the mount fails
// with EINVAL. After Unmount the device frees itself.
//
// flags are mount(2)'s MS_* flags; only a filesystem this process made
// itself (a test's scratch btrfs) may be mounted without Untrusted.
func MountFlags(img, mnt, fstype string, flags uintptr, data string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("loop-mount %s: %w", img, err)
	}
	defer ctl.Close()
	backing, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("loop-mount %s: %w", img, err)
	}
	defer backing.Close()
	for range 8 {
		dev, err := mountFree(ctl, backing, mnt, fstype, flags, data)
		if errors.Is(err, unix.EBUSY) {
			continue // raced with another user of the device
		}
		if err != nil {
			return "", fmt.Errorf("loop-mount %s on %s: %w", img, mnt, err)
		}
		return dev, nil
	}
	return "", fmt.Errorf("loop-mount %s: no free loop device after 8 tries", img)
}

func mountFree(ctl, backing *os.File, mnt, fstype string, flags uintptr, data string) (string, error) {
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return "", fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
	}
	dev := fmt.Sprintf("/dev/loop%d", n)
	if _, err := os.Stat(dev); os.IsNotExist(err) {
		// Containers without devtmpfs lack the node: make it.
		_ = unix.Mknod(dev, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n))))
	}
	lf, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer lf.Close() // with the mount in place this no longer clears the device
	cfg := &unix.LoopConfig{Fd: uint32(backing.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	if err := unix.IoctlLoopConfigure(int(lf.Fd()), cfg); err != nil {
		return "", fmt.Errorf("LOOP_CONFIGURE %s: %w", dev, err)
	}
	if err := unix.Mount(dev, mnt, fstype, flags, data); err != nil {
		return "", fmt.Errorf("mount -t %s -o %q (%s) %s: %w", fstype, data, flagNames(flags), dev, err)
	}
	return dev, nil
}

// flagNames spells the flags Mount uses the way mount(8) users read them.
func flagNames(flags uintptr) string {
	var names []string
	for _, f := range []struct {
		bit  uintptr
		name string
	}{{unix.MS_NOSUID, "MS_NOSUID"}, {unix.MS_NODEV, "MS_NODEV"}, {unix.MS_NOEXEC, "MS_NOEXEC"}} {
		if flags&f.bit != 0 {
			names = append(names, f.name)
			flags &^= f.bit
		}
	}
	if flags != 0 || len(names) == 0 {
		names = append(names, fmt.Sprintf("%#x", flags))
	}
	return strings.Join(names, "|")
}

package testenv

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// loopMu serialises loop-device allocation between the tests of one binary.
var loopMu sync.Mutex

// loopMount binds img to a free loop device with autoclear and mounts it on
// mnt with no MS_* flags: only a filesystem the test made itself comes here
// (rootfs tests run programs from image roots stored on it). The device
// stays open until the mount holds it: autoclear fires on the device's last
// close (seen on kernel 6.18), so a device closed before mount(2) is
// already unbound and the mount fails with EINVAL. After unmount the
// device frees itself. It returns the device.
func loopMount(img, mnt, fstype, data string) (string, error) {
	loopMu.Lock()
	defer loopMu.Unlock()
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
		dev, err := mountFreeLoop(ctl, backing, mnt, fstype, data)
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

func mountFreeLoop(ctl, backing *os.File, mnt, fstype, data string) (string, error) {
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
	if err := unix.Mount(dev, mnt, fstype, 0, data); err != nil {
		return "", fmt.Errorf("mount -t %s -o %q %s: %w", fstype, data, dev, err)
	}
	return dev, nil
}

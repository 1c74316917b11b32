// Package testenv gives tests the real parts they need (root, a loop-mounted
// btrfs, a VM backend) and decides what happens when one is missing: the test
// skips with the reason, except when LOFTD_TEST_REQUIRE_ALL=1 (CI), where a
// missing part fails the test, so nothing that matters silently skips in CI.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireAllEnv, set to 1, turns every skip of this package into a failure.
const RequireAllEnv = "LOFTD_TEST_REQUIRE_ALL"

// Missing skips t with reason, or fails it when LOFTD_TEST_REQUIRE_ALL=1.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv(RequireAllEnv) == "1" {
		t.Fatalf("required by %s=1 but missing: %s", RequireAllEnv, reason)
	}
	t.Skip("skipping: " + reason)
}

// RequireRoot skips (or fails, in CI) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root (euid %d)", os.Geteuid())
	}
}

// RequireCommand returns the path of name, or skips (fails in CI) with the
// Debian package that provides it.
func RequireCommand(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not found (apt-get install %s)", name, debianPackage)
	}
	return p
}

// Btrfs returns the mount point of a fresh btrfs filesystem: a sparse file
// under t.TempDir(), formatted with mkfs.btrfs, loop-mounted with
// user_subvol_rm_allowed and unmounted when the test ends.
func Btrfs(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	mkfs := RequireCommand(t, "mkfs.btrfs", "btrfs-progs")
	dir := t.TempDir()
	img := filepath.Join(dir, "btrfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	// 1 GiB apparent: above mkfs.btrfs's minimum, sparse on disk.
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command(mkfs, "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs %s: %v\n%s", img, err, out)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	loop, err := attachLoop(img)
	if err != nil {
		Missing(t, "loop device for %s: %v", img, err)
	}
	if err := unix.Mount(loop, mnt, "btrfs", 0, "user_subvol_rm_allowed"); err != nil {
		detachLoop(loop)
		Missing(t, "mount btrfs %s on %s: %v", loop, mnt, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
		detachLoop(loop)
	})
	return mnt
}

var loopMu sync.Mutex

// attachLoop binds img to a free loop device with autoclear, so the device
// frees itself when its last user (the mount) goes away.
func attachLoop(img string) (string, error) {
	loopMu.Lock()
	defer loopMu.Unlock()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer ctl.Close()
	backing, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer backing.Close()
	for range 8 {
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
		cfg := &unix.LoopConfig{Fd: uint32(backing.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		err = unix.IoctlLoopConfigure(int(lf.Fd()), cfg)
		lf.Close()
		if err == unix.EBUSY {
			continue // raced with another user of the device
		}
		if err != nil {
			return "", fmt.Errorf("LOOP_CONFIGURE %s: %w", dev, err)
		}
		return dev, nil
	}
	return "", fmt.Errorf("no free loop device after 8 tries")
}

func detachLoop(dev string) {
	if f, err := os.OpenFile(dev, os.O_RDWR, 0); err == nil {
		_ = unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
		f.Close()
	}
}

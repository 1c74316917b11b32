package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHostDiskFull fills the host filesystem under the state directory (a
// 200 MiB tmpfs) from the guest, writing 400 MiB to /nix (the nix disk):
// the guest's write fails with an I/O error instead of QEMU pausing the VM
// forever, and loftd ends with an error that names the full filesystem.
func TestHostDiskFull(t *testing.T) {
	w := newWorld(t)
	if err := unix.Mount("tmpfs", w.state, "tmpfs", 0, "size=200m,mode=0755"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", w.state, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(w.state, unix.MNT_DETACH) })
	c := w.cmd("--vmm", "qemu", "--root", "--", "sh", "-c", diskFullScript)
	checkDiskFullRun(t, c, w.state)
}

// TestHostDiskFullRootless is TestHostDiskFull as an unprivileged user,
// whose home (and so state directory) is the small tmpfs.
func TestHostDiskFullRootless(t *testing.T) {
	newWorld(t) // the requirements: root, a VM backend, mkfs.btrfs
	r := newRootless(t)
	home := filepath.Join(r.base, "small-home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", home, "tmpfs", 0, fmt.Sprintf("size=200m,mode=0700,uid=%d,gid=%d", r.uid, r.gid)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", home, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(home, unix.MNT_DETACH) })
	r.home = home
	c := r.cmd(t, "--rootfs", r.userRoot(t), "--root", "--", "sh", "-c", diskFullScript)
	checkDiskFullRun(t, c, home)
}

// diskFullScript writes 400 MiB to /nix, twice the host filesystem's size.
const diskFullScript = "dd if=/dev/zero of=/nix/big bs=1M count=400 conv=fsync; echo dd=$?"

// checkDiskFullRun runs c, bounded (a VM paused on ENOSPC would never
// end), and wants the guest's write to have failed and loftd to have
// failed naming the full filesystem under state.
func checkDiskFullRun(t *testing.T, c *exec.Cmd, state string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-ctx.Done():
		_ = c.Process.Kill()
		<-done
		t.Fatalf("loftd with a full state filesystem did not end within 3 minutes (QEMU paused the VM?)\nstdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	status := c.ProcessState.ExitCode()
	if status == 0 || !strings.Contains(out.String(), "dd=1") {
		t.Errorf("loftd -- sh -c %q = %d, stdout %q; want dd to fail (dd=1) and loftd to exit non-zero\nstderr:\n%s", diskFullScript, status, out.String(), errb.String())
	}
	if msg := errb.String(); !strings.Contains(msg, "the guest's disks failed writes") || !strings.Contains(msg, state) {
		t.Errorf("stderr = %q, want the disk write error naming the state filesystem %s", msg, state)
	}
}

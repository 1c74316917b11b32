package e2e

import (
	"bytes"
	"context"
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
	// Bounded: a VM paused on ENOSPC would never end.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	script := "dd if=/dev/zero of=/nix/big bs=1M count=400 conv=fsync; echo dd=$?"
	c := w.cmd("--vmm", "qemu", "--root", "--", "sh", "-c", script)
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
		t.Errorf("loftd -- sh -c %q = %d, stdout %q; want dd to fail (dd=1) and loftd to exit non-zero", script, status, out.String())
	}
	if msg := errb.String(); !strings.Contains(msg, "the guest's disks failed writes") || !strings.Contains(msg, w.state) {
		t.Errorf("stderr = %q, want the disk write error naming the state filesystem %s", msg, w.state)
	}
}

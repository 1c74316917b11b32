package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// TestRootlessRootOwnedRootfs: a rootless run over a --rootfs that host
// root owns cannot let the guest write /etc (the owner is outside the
// user's namespace): loftd refuses before boot, says why and how to fix
// it, instead of the guest init failing on /etc/hosts with "permission
// denied". The copy the message suggests then runs.
func TestRootlessRootOwnedRootfs(t *testing.T) {
	newWorld(t) // the requirements: root, a VM backend, mkfs.btrfs
	r := newRootless(t)
	root := filepath.Join(r.base, "root-owned")
	if out, err := exec.Command("cp", "-a", testenv.BusyboxRoot(t), root).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	r.readable(t, root)
	status, stdout, stderr := r.run(t, "--rootfs", root, "--", "cat", "/etc/hosts")
	if status != 125 || !strings.Contains(stderr, "outside your user namespace") || !strings.Contains(stderr, "--no-preserve=ownership") {
		t.Fatalf("rootless loftd --rootfs %s (root's) = %d, %q; want 125 and the reason with its fix\nstderr:\n%s", root, status, stdout, stderr)
	}
	copyDir := filepath.Join(r.home, "rootfs")
	cp := exec.Command("cp", "-a", "--no-preserve=ownership", root, copyDir)
	cp.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)}}
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("cp as the user: %v %s", err, out)
	}
	status, stdout, stderr = r.run(t, "--rootfs", copyDir, "--", "cat", "/etc/hosts")
	if status != 0 || !strings.Contains(stdout, "localhost") {
		t.Errorf("rootless loftd --rootfs %s (the user's copy) = %d, %q; want 0 and the guest's /etc/hosts\nstderr:\n%s", copyDir, status, stdout, stderr)
	}
}

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

// TestRootlessImage runs loftd as an unprivileged user: it enters the
// keep-id user namespace, ingests the image, mounts the task root and boots
// the VM there. In the guest the image's files are root's, /workspace is
// the user's (their uid), as DESIGN.md's keep-id map promises, and the
// workload runs as dev with the user's ids: what it writes in /workspace
// is the user's on the host.
func TestRootlessImage(t *testing.T) {
	newWorld(t) // the requirements: root, a VM backend, mkfs.btrfs
	u := testenv.RootlessUser(t)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// Everything the user reads or writes lives under one world-traversable
	// directory (t.TempDir's parents are private to root).
	base, err := os.MkdirTemp("", "loftd-rootless-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	home, run, ws, bin := filepath.Join(base, "home"), filepath.Join(base, "run"), filepath.Join(base, "ws"), filepath.Join(base, "bin")
	for _, d := range []string{home, run, ws, bin} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{home, run, ws} {
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	chmod(t, 0o755, base, bin)
	for _, b := range []string{bins.loftd, bins.guestInit} {
		copyExec(t, b, filepath.Join(bin, filepath.Base(b)))
	}
	ref := rootfstest.Build(t, rootfstest.Spec{Dir: filepath.Join(base, "layout"), Tag: "v1", Files: []rootfstest.File{
		{Path: "/marker", Mode: 0o644, Content: []byte("rootless-marker\n")},
		{Path: "/bin/cat", Link: "busybox"}, {Path: "/bin/stat", Link: "busybox"}, {Path: "/bin/id", Link: "busybox"},
	}})
	if out, err := exec.Command("chmod", "-R", "a+rX", filepath.Join(base, "layout")).CombinedOutput(); err != nil {
		t.Fatalf("chmod layout: %v %s", err, out)
	}
	c := exec.Command(filepath.Join(bin, "loftd"), "--vmm", "qemu", "--mem", "1", "--cpus", "1", "--workspace", ws, "--image", ref,
		"--", "sh", "-c", "cat /marker; stat -c '%u:%g' /marker /workspace; id -u; id -g; id -un; echo x > /workspace/from-guest")
	c.Dir = ws
	c.Env = []string{"HOME=" + home, "XDG_RUNTIME_DIR=" + run, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		"LOFTD_LIBKRUNFW_LIBRARY=" + os.Getenv("LOFTD_LIBKRUNFW_LIBRARY")}
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := c.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	want := "rootless-marker\n0:0\n" + u.Uid + ":" + u.Gid + "\n" + u.Uid + "\n" + u.Gid + "\ndev\n"
	if err != nil || string(out) != want {
		t.Fatalf("rootless loftd: %v, stdout %q, want %q\nstderr:\n%s", err, out, want, stderr)
	}
	// What the guest wrote is the user's on the host, and theirs to delete.
	made := filepath.Join(ws, "from-guest")
	st, err := os.Stat(made)
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Sys().(*syscall.Stat_t); int(s.Uid) != uid || int(s.Gid) != gid {
		t.Errorf("%s on the host: owner %d:%d, want the user's %d:%d", made, s.Uid, s.Gid, uid, gid)
	}
	rm := exec.Command("rm", made)
	rm.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if out, err := rm.CombinedOutput(); err != nil {
		t.Errorf("rm %s as the user: %v %s", made, err, out)
	}
}

func chmod(t *testing.T, mode os.FileMode, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func copyExec(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

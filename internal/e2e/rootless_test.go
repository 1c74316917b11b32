package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

// rootlessWorld is a home, runtime dir, workspace, binaries and image for
// loftd run as the unprivileged test user, all under one world-traversable
// directory (t.TempDir's parents are private to root).
type rootlessWorld struct {
	t                        testing.TB
	user                     *rootfs.KeepID
	uid, gid                 int
	base, home, run, ws, bin string
	ref                      string
}

func newRootlessWorld(t *testing.T) *rootlessWorld {
	t.Helper()
	newWorld(t) // the requirements: root, a VM backend, mkfs.btrfs
	u := testenv.RootlessUser(t)
	w := &rootlessWorld{t: t}
	w.uid, _ = strconv.Atoi(u.Uid)
	w.gid, _ = strconv.Atoi(u.Gid)
	uids, gids, err := rootfs.SubIDs(u.Username)
	if err != nil {
		t.Fatal(err)
	}
	k, err := rootfs.KeepIDFor(u.Username, uint32(w.uid), uint32(w.gid), uids, gids)
	if err != nil {
		t.Fatal(err)
	}
	w.user = k
	if w.base, err = os.MkdirTemp("", "loftd-rootless-e2e-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(w.base) })
	w.home, w.run, w.ws, w.bin = filepath.Join(w.base, "home"), filepath.Join(w.base, "run"), filepath.Join(w.base, "ws"), filepath.Join(w.base, "bin")
	for _, d := range []string{w.home, w.run, w.ws, w.bin} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{w.home, w.run, w.ws} {
		if err := os.Chown(d, w.uid, w.gid); err != nil {
			t.Fatal(err)
		}
	}
	chmod(t, 0o755, w.base, w.bin)
	for _, b := range []string{bins.loftd, bins.guestInit} {
		copyExec(t, b, filepath.Join(w.bin, filepath.Base(b)))
	}
	w.ref = rootfstest.Build(t, rootfstest.Spec{Dir: filepath.Join(w.base, "layout"), Tag: "v1", Files: []rootfstest.File{
		{Path: "/marker", Mode: 0o644, Content: []byte("rootless-marker\n")},
		{Path: "/bin/cat", Link: "busybox"}, {Path: "/bin/stat", Link: "busybox"},
		{Path: "/bin/id", Link: "busybox"}, {Path: "/bin/sleep", Link: "busybox"},
	}})
	if out, err := exec.Command("chmod", "-R", "a+rX", filepath.Join(w.base, "layout")).CombinedOutput(); err != nil {
		t.Fatalf("chmod layout: %v %s", err, out)
	}
	return w
}

// cmd is loftd on the world's image as the unprivileged user.
func (w *rootlessWorld) cmd(args ...string) *exec.Cmd {
	base := []string{"--vmm", "qemu", "--mem", "1", "--cpus", "1", "--workspace", w.ws, "--image", w.ref}
	c := exec.Command(filepath.Join(w.bin, "loftd"), append(base, args...)...)
	c.Dir = w.ws
	c.Env = []string{"HOME=" + w.home, "XDG_RUNTIME_DIR=" + w.run, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		"LOFTD_LIBKRUNFW_LIBRARY=" + os.Getenv("LOFTD_LIBKRUNFW_LIBRARY")}
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(w.uid), Gid: uint32(w.gid)}}
	return c
}

// TestRootlessImage runs loftd as an unprivileged user: it enters the
// keep-id user namespace, ingests the image, mounts the task root and boots
// the VM there. In the guest the image's files are root's, /workspace is
// the user's (their uid), as DESIGN.md's keep-id map promises, and the
// workload runs as dev with the user's ids: what it writes in /workspace
// is the user's on the host, and theirs to delete.
func TestRootlessImage(t *testing.T) {
	w := newRootlessWorld(t)
	c := w.cmd("--", "sh", "-c", "cat /marker; stat -c '%u:%g' /marker /workspace; id -u; id -g; id -un; echo x > /workspace/guest-wrote")
	out, err := c.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	uid, gid := strconv.Itoa(w.uid), strconv.Itoa(w.gid)
	want := "rootless-marker\n0:0\n" + uid + ":" + gid + "\n" + uid + "\n" + gid + "\ndev\n"
	if err != nil || string(out) != want {
		t.Fatalf("rootless loftd: %v, stdout %q, want %q\nstderr:\n%s", err, out, want, stderr)
	}
	made := filepath.Join(w.ws, "guest-wrote")
	fi, err := os.Lstat(made)
	if err != nil {
		t.Fatalf("the file the guest wrote in /workspace: %v", err)
	}
	if s := fi.Sys().(*syscall.Stat_t); int(s.Uid) != w.uid || int(s.Gid) != w.gid {
		t.Errorf("%s on the host: owner %d:%d, want the user's %d:%d", made, s.Uid, s.Gid, w.uid, w.gid)
	}
	rm := exec.Command("rm", made)
	rm.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(w.uid), Gid: uint32(w.gid)}}
	if out, err := rm.CombinedOutput(); err != nil {
		t.Errorf("rm %s as the user: %v %s", made, err, out)
	}
}

// processesUnder lists the processes whose command line names dir, other
// than this test's own.
func processesUnder(dir string) (lines []string, pids []int) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || pid == os.Getpid() || !strings.Contains(string(data), dir) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		if strings.Contains(string(stat), ") Z ") {
			continue // a zombie is gone but for its parent's wait
		}
		lines = append(lines, strconv.Itoa(pid)+": "+strings.ReplaceAll(string(data), "\x00", " "))
		pids = append(pids, pid)
	}
	return lines, pids
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

package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

// plant is one way an image or a --rootfs directory points loftd's files
// at the host: victim is the directory the links point into.
type plant struct {
	name  string
	links func(victim string) map[string]string // path in the root -> link target
}

// plants covers /.loftd, /.loftd/guest-init and /.krun_config.json as
// symlinks, in absolute and relative ("../../..") form. Short names: the
// test's temporary directories, and the sockets under them, carry them.
var plants = []plant{
	{"dir-abs", func(v string) map[string]string {
		return map[string]string{"/.loftd": v, "/.krun_config.json": "../../../../../../../.." + v + "/config"}
	}},
	{"file-rel", func(v string) map[string]string {
		return map[string]string{"/.loftd/guest-init": "../../../../../../../.." + v + "/guest-init", "/.krun_config.json": v + "/config"}
	}},
}

// newVictim makes a directory of files a planted link points at, owned by
// uid (the user loftd runs as, so a rootless loftd could write them).
func newVictim(t *testing.T, parent string, uid, gid int) string {
	t.Helper()
	v, err := os.MkdirTemp(parent, "victim-")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"guest-init", "config"} {
		if err := os.WriteFile(filepath.Join(v, n), []byte("host file "+n+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", uid, gid), v).CombinedOutput(); err != nil {
		t.Fatalf("chown victim: %v %s", err, out)
	}
	return v
}

// plantLinks puts the links into a root directory.
func plantLinks(t *testing.T, root string, links map[string]string) {
	t.Helper()
	for p, target := range links {
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, dst); err != nil {
			t.Fatal(err)
		}
	}
}

// imageLinks is the same as image files.
func imageLinks(links map[string]string) []rootfstest.File {
	var files []rootfstest.File
	for p, target := range links {
		if filepath.Dir(p) == "/.loftd" {
			files = append(files, rootfstest.File{Path: "/.loftd", Mode: os.ModeDir | 0o755})
		}
		files = append(files, rootfstest.File{Path: p, Link: target})
	}
	return files
}

// checkSymlinkRun: the run works inside the root or fails with 125 naming
// a planted path; the victim directory is exactly as it was.
func checkSymlinkRun(t *testing.T, victim, before string, status int, stdout, stderr string) {
	t.Helper()
	if after := listTree(t, victim); after != before {
		t.Errorf("files outside the root changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	switch {
	case status == 0 && stdout == "ok\n":
	case status == 125 && (strings.Contains(stderr, "/.loftd") || strings.Contains(stderr, "/.krun_config.json")):
	default:
		t.Errorf("run = %d, stdout %q; want 0 and \"ok\\n\", or 125 naming the planted path\nstderr:\n%s", status, stdout, stderr)
	}
}

// TestRootSymlinksAsRoot: an image or --rootfs directory whose /.loftd,
// /.loftd/guest-init and /.krun_config.json are symlinks to host files
// never makes loftd (as root) write them.
func TestRootSymlinksAsRoot(t *testing.T) {
	for _, p := range plants {
		for _, kind := range []string{"rootfs", "image"} {
			t.Run(kind+"/"+p.name, func(t *testing.T) {
				w := newWorld(t)
				victim := newVictim(t, t.TempDir(), 0, 0)
				before := listTree(t, victim)
				args := []string{"--vmm", "qemu", "--", "sh", "-c", "echo ok"}
				if kind == "rootfs" {
					plantLinks(t, w.root, p.links(victim))
				} else {
					ref := rootfstest.Build(t, rootfstest.Spec{Dir: filepath.Join(t.TempDir(), "layout"), Tag: "v1", Files: imageLinks(p.links(victim))})
					args = append([]string{"--image", ref}, args...)
				}
				status, stdout, stderr := w.run("", args...)
				checkSymlinkRun(t, victim, before, status, stdout, stderr)
			})
		}
	}
}

// TestRootSymlinksRootless: the same as the unprivileged test user, whose
// own files the links point at.
func TestRootSymlinksRootless(t *testing.T) {
	newWorld(t)
	r := newRootless(t)
	for _, p := range plants {
		for _, kind := range []string{"rootfs", "image"} {
			t.Run(kind+"/"+p.name, func(t *testing.T) {
				victim := newVictim(t, r.base, r.uid, r.gid)
				before := listTree(t, victim)
				args := []string{"--", "sh", "-c", "echo ok"}
				if kind == "rootfs" {
					root := r.userRoot(t)
					plantLinks(t, root, p.links(victim))
					r.chownTree(t, root)
					args = append([]string{"--rootfs", root}, args...)
				} else {
					layout, err := os.MkdirTemp(r.base, "layout-")
					if err != nil {
						t.Fatal(err)
					}
					ref := rootfstest.Build(t, rootfstest.Spec{Dir: layout, Tag: "v1", Files: imageLinks(p.links(victim))})
					r.readable(t, layout)
					args = append([]string{"--image", ref}, args...)
				}
				status, stdout, stderr := r.run(t, args...)
				checkSymlinkRun(t, victim, before, status, stdout, stderr)
			})
		}
	}
}

// TestRootfsUnchanged: a --rootfs directory is byte for byte the same after
// a run that writes to /, a read-only one works, and the task's overlay is
// gone afterwards.
func TestRootfsUnchanged(t *testing.T) {
	w := newWorld(t)
	ro := t.TempDir()
	if out, err := exec.Command("mount", "--bind", w.root, ro).CombinedOutput(); err != nil {
		t.Fatalf("mount --bind: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", ro).Run() })
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", ro).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v %s", err, out)
	}
	before := listTree(t, w.root)
	script := "echo guest > /written && rm /bin/ls && cat /written"
	for _, root := range []string{w.root, ro} {
		w.root = root
		// --root: the guest writes where only root may (/, /bin).
		status, stdout, stderr := w.run("", "--vmm", "qemu", "--root", "--", "sh", "-c", script)
		if status != 0 || stdout != "guest\n" {
			t.Errorf("loftd --rootfs %s -- sh -c %q = %d, %q; want 0, \"guest\\n\"\nstderr:\n%s", root, script, status, stdout, stderr)
		}
		if after := listTree(t, root); after != before {
			t.Errorf("--rootfs %s changed by a run:\nbefore:\n%s\nafter:\n%s", root, before, after)
		}
		if tasks, _ := os.ReadDir(filepath.Join(w.state, "loftd", "tasks")); len(tasks) != 0 {
			t.Errorf("task state left after the run: %v", tasks)
		}
		if mi, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mi, []byte(w.state)) {
			t.Errorf("a mount under the state directory %s is left after the run", w.state)
		}
	}
}

// TestRootfsConcurrent: four workspaces run over one --rootfs at once, each
// with its own secret; each prints exactly its own.
func TestRootfsConcurrent(t *testing.T) {
	w := newWorld(t)
	const n = 4
	type result struct {
		status         int
		stdout, stderr string
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wi := &world{t: t, state: w.state, workspace: t.TempDir(), root: w.root}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := wi.cmd("--vmm", "qemu", "-e", "S=secret-"+strconv.Itoa(i), "--", "sh", "-c", "echo $S")
			var out, errb bytes.Buffer
			c.Stdout, c.Stderr = &out, &errb
			_ = c.Run()
			results[i] = result{c.ProcessState.ExitCode(), out.String(), errb.String()}
		}()
	}
	wg.Wait()
	for i, r := range results {
		if want := "secret-" + strconv.Itoa(i) + "\n"; r.status != 0 || r.stdout != want {
			t.Errorf("run %d = %d, %q; want 0, %q\nstderr:\n%s", i, r.status, r.stdout, want, r.stderr)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(w.root, ".loftd")); len(entries) != 0 {
		t.Errorf("the shared --rootfs holds .loftd/%v after the runs", entries)
	}
}

// TestRootfsRefusesHostTrees: --rootfs / or a parent of the state directory
// or of the workspace is a usage error (2) that names the fix.
func TestRootfsRefusesHostTrees(t *testing.T) {
	w := newWorld(t)
	for _, root := range []string{"/", filepath.Dir(w.state), filepath.Dir(w.workspace), w.workspace} {
		w.root = root
		status, _, stderr := w.run("", "--vmm", "qemu", "--", "true")
		if status != 2 || !strings.Contains(stderr, "--rootfs "+root) || !strings.Contains(stderr, "pass a directory") {
			t.Errorf("loftd --rootfs %s = %d; want 2 and an error naming it and the fix\nstderr:\n%s", root, status, stderr)
		}
	}
	if _, err := os.Stat("/.krun_config.json"); err == nil {
		t.Errorf("/.krun_config.json exists on the host")
	}
}

// TestImageFirstUse runs each transport on a state directory never used
// before, as root and rootless.
func TestImageFirstUse(t *testing.T) {
	newWorld(t)
	for _, who := range []string{"root", "rootless"} {
		t.Run(who, func(t *testing.T) {
			var r *rootless
			dir := t.TempDir()
			if who == "rootless" {
				r = newRootless(t)
				dir = r.base
			}
			layout := filepath.Join(dir, "layout")
			oci := rootfstest.Build(t, rootfstest.Spec{Dir: layout, Tag: "v1", Files: []rootfstest.File{
				{Path: "/marker", Mode: 0o644, Content: []byte("first-use\n")}, {Path: "/bin/cat", Link: "busybox"}}})
			refs := []string{oci,
				"oci-archive:" + filepath.Join(dir, "img.oci.tar") + ":v1",
				"docker-archive:" + filepath.Join(dir, "img.docker.tar") + ":loftd/test:v1"}
			for _, dst := range refs[1:] {
				rootfstest.Copy(t, oci, dst)
			}
			for _, ref := range refs {
				transport, _, _ := strings.Cut(ref, ":")
				t.Run(transport, func(t *testing.T) {
					args := []string{"--vmm", "qemu", "--image", ref, "--", "cat", "/marker"}
					var status int
					var stdout, stderr string
					if r == nil {
						w := newWorld(t) // a fresh state directory
						status, stdout, stderr = w.run("", args...)
					} else {
						r.readable(t, dir)
						r.freshState(t)
						status, stdout, stderr = r.run(t, args...)
					}
					if status != 0 || stdout != "first-use\n" {
						t.Errorf("first loftd --image %s = %d, %q; want 0, \"first-use\\n\"\nstderr:\n%s", ref, status, stdout, stderr)
					}
				})
			}
		})
	}
}

// listTree describes every entry under dir (path, type and mode, owner,
// size, sha256 of a file, target of a link) for before/after comparisons.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s %v %d:%d %d", rel, fi.Mode(), st.Uid, st.Gid, fi.Size())
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	return b.String()
}

// rootless runs loftd as the unprivileged test user, with its binaries,
// home and runtime directory under one world-traversable base directory.
type rootless struct {
	base, home, runDir, bin string
	uid, gid                int
}

func newRootless(t *testing.T) *rootless {
	t.Helper()
	u := testenv.RootlessUser(t)
	r := &rootless{}
	r.uid, _ = strconv.Atoi(u.Uid)
	r.gid, _ = strconv.Atoi(u.Gid)
	base, err := os.MkdirTemp("", "lr-") // short: virtiofsd socket paths under it must fit 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	r.base, r.runDir, r.bin = base, filepath.Join(base, "run"), filepath.Join(base, "bin")
	for _, d := range []string{r.runDir, r.bin} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(r.runDir, r.uid, r.gid); err != nil {
		t.Fatal(err)
	}
	chmod(t, 0o755, base, r.bin)
	for _, b := range []string{bins.loftd, bins.guestInit} {
		copyExec(t, b, filepath.Join(r.bin, filepath.Base(b)))
	}
	r.freshState(t)
	return r
}

// freshState gives the user a new home, so the next run starts from a
// state directory never used before.
func (r *rootless) freshState(t *testing.T) {
	t.Helper()
	home, err := os.MkdirTemp(r.base, "h-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, r.uid, r.gid); err != nil {
		t.Fatal(err)
	}
	chmod(t, 0o700, home)
	r.home = home
}

// userRoot is a busybox root directory owned by the user.
func (r *rootless) userRoot(t *testing.T) string {
	t.Helper()
	root, err := os.MkdirTemp(r.base, "rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", testenv.BusyboxRoot(t)+"/.", root).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	r.chownTree(t, root)
	return root
}

func (r *rootless) chownTree(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("chown", "-hR", fmt.Sprintf("%d:%d", r.uid, r.gid), dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
}

func (r *rootless) readable(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("chmod", "-R", "a+rX", dir).CombinedOutput(); err != nil {
		t.Fatalf("chmod: %v %s", err, out)
	}
}

// run runs loftd as the user in a fresh workspace of theirs.
func (r *rootless) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	c := r.cmd(t, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil && c.ProcessState == nil {
		t.Fatalf("rootless loftd %q: %v", args, err)
	}
	return c.ProcessState.ExitCode(), out.String(), errb.String()
}

// cmd is loftd as the user in a fresh workspace of theirs.
func (r *rootless) cmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	ws, err := os.MkdirTemp(r.base, "ws-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(ws, r.uid, r.gid); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(filepath.Join(r.bin, "loftd"), append([]string{"--mem", "1", "--cpus", "1", "--vmm", "qemu", "--workspace", ws}, args...)...)
	c.Dir = ws
	c.Env = []string{"HOME=" + r.home, "XDG_RUNTIME_DIR=" + r.runDir, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		"LOFTD_LIBKRUNFW_LIBRARY=" + os.Getenv("LOFTD_LIBKRUNFW_LIBRARY")}
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)}}
	return c
}

package rootfs

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

// rootlessEnv carries "workdir|ref" to the test binary re-run as the
// unprivileged user; its presence is what makes TestRootlessChild run.
const rootlessEnv = "LOFTD_ROOTFS_TEST_ROOTLESS"

// TestRootlessKeepID re-runs this test binary as an unprivileged user with
// subordinate ids; that run enters the keep-id namespace (a second re-exec)
// and ingests, mounts and inspects the image there (TestRootlessChild).
// Afterwards, as root, it checks the host-side ownership of the layers.
func TestRootlessKeepID(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "useradd", "passwd")
	testenv.RequireCommand(t, "newuidmap", "uidmap")
	u := testenv.RootlessUser(t)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	uids, gids, err := SubIDs(u.Username)
	if err != nil {
		t.Fatalf("SubIDs(%s) = %v", u.Username, err)
	}
	k, err := KeepIDFor(u.Username, uint32(uid), uint32(gid), uids, gids)
	if err != nil {
		t.Fatalf("KeepIDFor(%s) = %v", u.Username, err)
	}
	work, err := os.MkdirTemp("", "loftd-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeTree(work) })
	ref := rootfstest.Build(t, rootfstest.Spec{Dir: filepath.Join(work, "layout"), Tag: "v1"})
	bin := filepath.Join(work, "rootfs.test")
	if err := copyFile(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	if err := chownTree(work, uid, gid); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestRootlessChild$", "-test.v", "-test.count=1")
	cmd.Dir = work
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + u.HomeDir, "USER=" + u.Username, "LOGNAME=" + u.Username,
		rootlessEnv + "=" + work + "|" + ref, testenv.RequireAllEnv + "=" + os.Getenv(testenv.RequireAllEnv)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	t.Logf("rootless run as %s (uid %d, maps %v):\n%s", u.Username, uid, k.UIDMap, out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestRootlessChild") {
		t.Fatalf("rootless run: %v", err)
	}
	// The host's view of the layer the namespace wrote: ns 0 → first
	// subordinate id, ns 1000 → as mapped, setuid bit kept.
	for _, f := range []struct {
		path string
		nsID uint32
		mode os.FileMode
	}{
		{rootfstest.RootFile, 0, 0o644},
		{rootfstest.UserFile, rootfstest.UserUID, 0o600},
		{rootfstest.SetuidFile, 0, os.ModeSetuid | 0o755},
	} {
		images := filepath.Join(work, "state", "images")
		matches, _ := filepath.Glob(filepath.Join(images, "overlay", "*", "diff"+f.path))
		vfs, _ := filepath.Glob(filepath.Join(images, "vfs", "dir", "*"+f.path))
		matches = append(matches, vfs...)
		if len(matches) != 1 {
			t.Errorf("host copy of %s in the store: found %v, want one", f.path, matches)
			continue
		}
		fi, err := os.Lstat(matches[0])
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if want := hostID(k.UIDMap, f.nsID); st.Uid != want || fi.Mode() != f.mode {
			t.Errorf("host Lstat(%s) = uid %d %v, want uid %d %v", matches[0], st.Uid, fi.Mode(), want, f.mode)
		}
	}
}

// TestRootlessChild is the body of TestRootlessKeepID, run as the
// unprivileged user: first outside the namespace (it re-runs itself inside),
// then inside.
func TestRootlessChild(t *testing.T) {
	spec := os.Getenv(rootlessEnv)
	if spec == "" {
		t.Skip("run by TestRootlessKeepID as the unprivileged user")
	}
	work, ref, _ := strings.Cut(spec, "|")
	state := filepath.Join(work, "state")
	opts := EnterOptions{Dirs: []string{state, filepath.Join(state, "images"), filepath.Join(state, "run")}}
	if !InKeepID() {
		k, err := CurrentKeepID()
		if err != nil {
			t.Fatalf("CurrentKeepID() = %v", err)
		}
		code, err := RunKeepID(k, os.Args, opts)
		if err != nil || code != 0 {
			t.Fatalf("RunKeepID(%v) = %d, %v, want 0", k.UIDMap, code, err)
		}
		return
	}
	in, err := EnterKeepID(opts)
	if err != nil || !in {
		t.Fatalf("EnterKeepID() in the child = %v, %v, want true, nil", in, err)
	}
	uidMap, _ := os.ReadFile("/proc/self/uid_map")
	t.Logf("inside: euid %d, uid_map:\n%s", os.Geteuid(), uidMap)
	s, err := Open(Options{Root: filepath.Join(state, "images"), RunRoot: filepath.Join(state, "run"), Log: testLogger(t)})
	if err != nil {
		t.Fatalf("Open() rootless = %v", err)
	}
	defer s.Close()
	img, err := s.Resolve(context.Background(), ref, PullMissing, nil)
	if err != nil {
		t.Fatalf("Resolve(%q) rootless = %v", ref, err)
	}
	task, err := s.NewTask(context.Background(), img, filepath.Join(state, "tasks", "1"), BackendAuto)
	if err != nil {
		t.Fatalf("NewTask() rootless = %v", err)
	}
	d, why := s.Driver()
	t.Logf("driver %s (%s); backend %s (%s)", d, why, task.Backend, task.Reason)
	checkFiles(t, task.Root, imageFiles[:7]) // inside, ids are the image's own
	if err := os.WriteFile(filepath.Join(task.Root, "new"), []byte("x"), 0o644); err != nil {
		t.Errorf("write in the rootless task root: %v", err)
	}
	if err := task.Remove(); err != nil {
		t.Errorf("Remove() rootless = %v", err)
	}
}

func hostID(m []IDMap, ns uint32) uint32 {
	for _, e := range m {
		if ns >= e.ContainerID && ns < e.ContainerID+e.Size {
			return e.HostID + ns - e.ContainerID
		}
	}
	return 65534
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func chownTree(root string, uid, gid int) error {
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		return nil
	})
}

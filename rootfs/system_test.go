package rootfs

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs/rootfstest"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// env is one place to run a system test: a state dir and a driver.
type env struct {
	name, driver string
	btrfs        bool
}

func (e env) stateDir(t testing.TB) string {
	if e.btrfs {
		return testenv.Btrfs(t)
	}
	return t.TempDir()
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func openStore(t testing.TB, state, driver string) *Store {
	t.Helper()
	s, err := Open(Options{Root: filepath.Join(state, "images"), Driver: driver, Log: testLogger(t)})
	if err != nil {
		t.Fatalf("Open(%s, %s) = %v", state, driver, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// buildImage builds the default test image (plus /marker) in a temp dir.
func buildImage(t testing.TB) string {
	t.Helper()
	return rootfstest.Build(t, rootfstest.Spec{
		Dir:   filepath.Join(t.TempDir(), "layout"),
		Tag:   "v1",
		Files: []rootfstest.File{{Path: "/marker", Mode: 0o644, Content: []byte("marker\n")}},
	})
}

type wantFile struct {
	path     string
	uid, gid int
	mode     os.FileMode
	link     string
}

// imageFiles is what every task root must show, exactly, as real root.
var imageFiles = []wantFile{
	{path: rootfstest.Busybox, mode: 0o755},
	{path: rootfstest.RootFile, mode: 0o644},
	{path: "/home/u1000", uid: 1000, gid: 1000, mode: os.ModeDir | 0o750},
	{path: rootfstest.UserFile, uid: 1000, gid: 1000, mode: 0o600},
	{path: rootfstest.SetuidFile, mode: os.ModeSetuid | 0o755},
	{path: rootfstest.Symlink, mode: os.ModeSymlink | 0o777, link: "busybox"},
	{path: "/tmp", mode: os.ModeDir | os.ModeSticky | 0o777},
	{path: "/marker", mode: 0o644},
}

func checkFiles(t testing.TB, root string, want []wantFile) {
	t.Helper()
	for _, w := range want {
		p := filepath.Join(root, w.path)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("Lstat(%q) = %v", w.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != w.uid || int(st.Gid) != w.gid || fi.Mode() != w.mode {
			t.Errorf("Lstat(%q) = %d:%d %v, want %d:%d %v", w.path, st.Uid, st.Gid, fi.Mode(), w.uid, w.gid, w.mode)
		}
		if w.link != "" {
			if got, _ := os.Readlink(p); got != w.link {
				t.Errorf("Readlink(%q) = %q, want %q", w.path, got, w.link)
			}
		}
	}
}

func isMount(t testing.TB, p string) bool {
	t.Helper()
	m, err := mountinfo.Mounted(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("mountinfo.Mounted(%q) = %v", p, err)
	}
	return m
}

func TestTaskBackends(t *testing.T) {
	testenv.RequireRoot(t)
	ref := buildImage(t)
	for _, tc := range []struct {
		env         env
		backend     string
		wantBackend string
	}{
		{env{"btrfs", "auto", true}, "auto", BackendBtrfsSnapshot},
		{env{"btrfs", "btrfs", true}, BackendBtrfsSnapshot, BackendBtrfsSnapshot},
		{env{"btrfs", "btrfs", true}, BackendOverlay, BackendOverlay},
		{env{"ext4", "auto", false}, "auto", BackendOverlay},
		{env{"ext4", "overlay", false}, BackendOverlay, BackendOverlay},
		{env{"ext4", "overlay", false}, BackendFuseOverlay, BackendFuseOverlay},
		{env{"ext4", "vfs", false}, BackendOverlay, BackendOverlay},
	} {
		t.Run(tc.env.name+"-"+tc.env.driver+"-"+tc.backend, func(t *testing.T) {
			if tc.backend == BackendFuseOverlay {
				testenv.RequireCommand(t, "fuse-overlayfs", "fuse-overlayfs")
				if _, err := os.Stat("/dev/fuse"); err != nil {
					testenv.Missing(t, "/dev/fuse: %v", err)
				}
			}
			state := tc.env.stateDir(t)
			s := openStore(t, state, tc.env.driver)
			img, err := s.Resolve(context.Background(), ref, PullMissing, nil)
			if err != nil {
				t.Fatalf("Resolve(%q) = %v", ref, err)
			}
			taskDir := filepath.Join(state, "tasks", "1")
			task, err := s.NewTask(context.Background(), img, taskDir, tc.backend)
			if err != nil {
				t.Fatalf("NewTask(%s) = %v", tc.backend, err)
			}
			t.Logf("driver %s; backend %s: %s", s.driver, task.Backend, task.Reason)
			if task.Backend != tc.wantBackend {
				t.Errorf("NewTask(%s).Backend = %q, want %q", tc.backend, task.Backend, tc.wantBackend)
			}
			checkFiles(t, task.Root, imageFiles)
			checkBackend(t, task)
			if rec, err := ReadTaskRecord(taskDir); err != nil || rec.Digest != img.Digest || rec.Backend != task.Backend {
				t.Errorf("ReadTaskRecord(%s) = %+v, %v, want digest %s, backend %s", taskDir, rec, err, img.Digest, task.Backend)
			}
			// A write in one task root is invisible to the next.
			if err := os.WriteFile(filepath.Join(task.Root, "marker"), []byte("changed\n"), 0o644); err != nil {
				t.Fatalf("write in task root: %v", err)
			}
			task2, err := s.NewTask(context.Background(), img, filepath.Join(state, "tasks", "2"), tc.backend)
			if err != nil {
				t.Fatalf("second NewTask(%s) = %v", tc.backend, err)
			}
			if b, _ := os.ReadFile(filepath.Join(task2.Root, "marker")); string(b) != "marker\n" {
				t.Errorf("second task's /marker = %q, want %q", b, "marker\n")
			}
			for _, tk := range []*Task{task, task2} {
				if err := tk.Remove(); err != nil {
					t.Errorf("Remove() = %v", err)
				}
				if isMount(t, tk.Root) {
					t.Errorf("after Remove, %s is still a mount", tk.Root)
				}
				if _, err := os.Stat(tk.Dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("after Remove, Stat(%s) = %v, want not exist", tk.Dir, err)
				}
			}
		})
	}
}

func checkBackend(t testing.TB, task *Task) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(task.Root, &st); err != nil {
		t.Fatal(err)
	}
	switch task.Backend {
	case BackendBtrfsSnapshot:
		if st.Ino != 256 || !isSubvolume(task.Root) {
			t.Errorf("btrfs-snapshot root %s: inode %d, want 256 (a subvolume)", task.Root, st.Ino)
		}
	case BackendOverlay, BackendFuseOverlay:
		if !isMount(t, task.Root) {
			t.Errorf("%s root %s is not a mount point", task.Backend, task.Root)
		}
	}
}

// removeLayerBlobs deletes every blob of the OCI layout except the index's
// manifest, so any later copy from it fails.
func removeLayerBlobs(t testing.TB, ref string) {
	t.Helper()
	dir := strings.TrimPrefix(ref[:strings.LastIndex(ref, ":")], "oci:")
	var index struct{ Manifests []struct{ Digest string } }
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err == nil {
		err = json.Unmarshal(b, &index)
	}
	if err != nil || len(index.Manifests) != 1 {
		t.Fatalf("read %s/index.json: %v (%d manifests)", dir, err, len(index.Manifests))
	}
	keep := strings.TrimPrefix(index.Manifests[0].Digest, "sha256:")
	blobs, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	n := 0
	for _, p := range blobs {
		if filepath.Base(p) != keep {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n < 2 { // config + at least one layer
		t.Fatalf("removed %d blobs from %s, want config and layers", n, dir)
	}
}

func TestResolveCacheHit(t *testing.T) {
	testenv.RequireRoot(t)
	ref := buildImage(t)
	state := t.TempDir()
	s := openStore(t, state, "auto")
	ctx := context.Background()
	first, err := s.Resolve(ctx, ref, PullMissing, nil)
	if err != nil {
		t.Fatalf("Resolve(%q) = %v", ref, err)
	}
	if first.CacheHit || first.Digest == "" || first.ID == "" || first.Size <= 0 {
		t.Fatalf("first Resolve(%q) = %+v, want a pulled image with digest, ID and size", ref, first)
	}
	layers, _ := s.store.Layers()
	// Without its layers the source cannot be copied again: a hit must not try.
	removeLayerBlobs(t, ref)
	// always reads the manifest (present) and must find its digest cached;
	// then, with the layout gone entirely, missing and never must not even
	// open the source.
	layout := strings.TrimPrefix(ref[:strings.LastIndex(ref, ":")], "oci:")
	for _, step := range []struct {
		policy PullPolicy
		before func()
	}{
		{PullAlways, func() {}},
		{PullMissing, func() { os.RemoveAll(layout) }},
		{PullNever, func() {}},
	} {
		step.before()
		got, err := s.Resolve(ctx, ref, step.policy, nil)
		if err != nil {
			t.Fatalf("Resolve(%q, %s) = %v, want a cache hit", ref, step.policy, err)
		}
		if !got.CacheHit || got.ID != first.ID || got.Digest != first.Digest {
			t.Errorf("Resolve(%q, %s) = %+v, want cache hit of %+v", ref, step.policy, got, first)
		}
	}
	s.Close()
	s2 := openStore(t, state, "auto") // a new process's view
	if got, err := s2.Resolve(ctx, ref, PullMissing, nil); err != nil || !got.CacheHit {
		t.Errorf("Resolve(%q) from a reopened store = %+v, %v, want a cache hit", ref, got, err)
	}
	if after, _ := s2.store.Layers(); len(after) != len(layers) {
		t.Errorf("store has %d layers after the hits, want %d (nothing pulled)", len(after), len(layers))
	}
	imgs, err := s2.Images()
	if err != nil || len(imgs) != 1 || imgs[0].Digest != first.Digest || imgs[0].Refs[0] != ref {
		t.Errorf("Images() = %+v, %v, want one image %s named %s", imgs, err, first.Digest, ref)
	}
	if _, err := s2.Resolve(ctx, "oci:"+t.TempDir()+":nope", PullNever, nil); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("Resolve(unknown, never) = %v, want ErrImageNotFound", err)
	}
	if removed, err := s2.RemoveUnused(first.Digest); err != nil || len(removed) != 0 {
		t.Errorf("RemoveUnused(%s) = %v, %v, want nothing removed", first.Digest, removed, err)
	}
	if removed, err := s2.RemoveUnused(); err != nil || len(removed) != 1 {
		t.Errorf("RemoveUnused() = %v, %v, want the image removed", removed, err)
	}
	if _, err := s2.Resolve(ctx, ref, PullNever, nil); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("Resolve(%q, never) after RemoveUnused = %v, want ErrImageNotFound", ref, err)
	}
	if after, _ := s2.store.Layers(); len(after) != 0 {
		t.Errorf("store has %d layers after RemoveUnused, want 0", len(after))
	}
}

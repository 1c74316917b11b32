package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs/inroot"
)

// TestNewDirTask: a directory's task root is an overlay whose writes (also
// over a planted symlink) stay in the task; the directory and the files the
// symlink points at are unchanged, and Remove leaves nothing.
func TestNewDirTask(t *testing.T) {
	testenv.RequireRoot(t)
	for _, backend := range []string{BackendAuto, BackendOverlay, BackendFuseOverlay} {
		t.Run(backend, func(t *testing.T) {
			if backend == BackendFuseOverlay {
				testenv.RequireCommand(t, "fuse-overlayfs", "fuse-overlayfs")
			}
			dir, outside := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("lower\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(outside, "guest-init"), []byte("host\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(dir, ".loftd")); err != nil {
				t.Fatal(err)
			}
			taskDir := filepath.Join(t.TempDir(), "task")
			task, err := NewDirTask(dir, taskDir, backend, testLogger(t))
			if err != nil {
				t.Fatalf("NewDirTask(%s) = %v", backend, err)
			}
			if err := inroot.WriteFile(task.Root, "/.loftd/guest-init", strings.NewReader("init\n"), 0o755); err != nil {
				t.Fatalf("WriteFile through the overlay = %v", err)
			}
			if got, err := os.ReadFile(filepath.Join(task.Root, ".loftd", "guest-init")); err != nil || string(got) != "init\n" {
				t.Errorf("task root /.loftd/guest-init = %q, %v; want \"init\\n\"", got, err)
			}
			if got, _ := os.ReadFile(filepath.Join(task.Root, "keep")); string(got) != "lower\n" {
				t.Errorf("task root /keep = %q, want the lower directory's file", got)
			}
			if got, _ := os.ReadFile(filepath.Join(outside, "guest-init")); string(got) != "host\n" {
				t.Errorf("file behind the planted symlink = %q, want it unchanged", got)
			}
			if target, err := os.Readlink(filepath.Join(dir, ".loftd")); err != nil || target != outside {
				t.Errorf("lower .loftd = %q, %v; want the untouched symlink", target, err)
			}
			if err := task.Remove(); err != nil {
				t.Fatalf("Remove() = %v", err)
			}
			if _, err := os.Stat(taskDir); !os.IsNotExist(err) {
				t.Errorf("task directory after Remove: %v, want it gone", err)
			}
		})
	}
}

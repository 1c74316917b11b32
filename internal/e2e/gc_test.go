package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// TestGCKeptRoot (a short name: the socket paths under a btrfs test state
// must fit in 108 bytes): a --preserve-debug run of an image keeps its
// task root (a mounted overlay, a btrfs snapshot); the next run leaves it,
// and loftd gc removes it, mount and subvolume included.
func TestGCKeptRoot(t *testing.T) {
	for _, tt := range []struct {
		name, backend string
		btrfs         bool
	}{
		{"overlay", "overlay", false},
		{"btrfs", "btrfs-snapshot", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			if tt.btrfs {
				w.state = testenv.Btrfs(t)
			}
			ref := markerImage(t, "kept\n")
			args := []string{"--vmm", "qemu", "--image", ref, "--rootfs-backend", tt.backend}
			status, _, stderr := w.run("", append(args, "--preserve-debug", "--", "cat", "/marker")...)
			tasks := w.tasks()
			if status != 0 || len(tasks) != 1 || !strings.Contains(stderr, "kept task root") {
				t.Fatalf("--preserve-debug: status %d, task dirs %q; want the task and its root kept\n%s", status, tasks, stderr)
			}
			root := filepath.Join(w.state, "loftd", "tasks", tasks[0], "rootfs")
			if data, err := os.ReadFile(filepath.Join(root, "marker")); err != nil || string(data) != "kept\n" {
				t.Fatalf("kept task root %s: marker %q, %v", root, data, err)
			}
			if status, _, stderr := w.run("", append(args, "--", "cat", "/marker")...); status != 0 {
				t.Fatalf("the next run: status %d\n%s", status, stderr)
			}
			if got := w.tasks(); len(got) != 1 || got[0] != tasks[0] {
				t.Fatalf("after the next run, task dirs %q; want the kept task %s only", got, tasks[0])
			}
			w.gc("removed kept task " + tasks[0])
			if mounted(t, root) {
				t.Errorf("after gc, %s is still mounted", root)
			}
		})
	}
}

// mounted reports whether /proc/self/mountinfo lists path as a mount point.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

// TestGCKeptRootRootless: the same as an unprivileged user, whose task
// root was made in the keep-id namespace that gc enters again.
func TestGCKeptRootRootless(t *testing.T) {
	w := newRootlessWorld(t)
	loftd := func(c *exec.Cmd) (string, error) {
		out, err := c.CombinedOutput()
		return string(out), err
	}
	tasksDir := filepath.Join(w.home, ".local", "state", "loftd", "tasks")
	if out, err := loftd(w.cmd("--preserve-debug", "--", "cat", "/marker")); err != nil || !strings.Contains(out, "kept task root") {
		t.Fatalf("rootless --preserve-debug: %v\n%s", err, out)
	}
	tasks, _ := os.ReadDir(tasksDir)
	if len(tasks) != 1 {
		t.Fatalf("rootless --preserve-debug left %d task dirs, want 1", len(tasks))
	}
	gc := w.cmd()
	gc.Args = []string{gc.Path, "gc"}
	if out, err := loftd(gc); err != nil || !strings.Contains(out, "removed kept task "+tasks[0].Name()) {
		t.Errorf("rootless loftd gc: %v\n%s", err, out)
	}
	if rest, _ := os.ReadDir(tasksDir); len(rest) != 0 {
		t.Errorf("rootless loftd gc left %d task dirs", len(rest))
	}
}

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

// markerImage builds an OCI layout holding busybox and /marker.
func markerImage(t *testing.T, marker string) string {
	t.Helper()
	return rootfstest.Build(t, rootfstest.Spec{Dir: filepath.Join(t.TempDir(), "layout"), Tag: "v1", Files: []rootfstest.File{
		{Path: "/marker", Mode: 0o644, Content: []byte(marker)},
		{Path: "/bin/cat", Link: "busybox"},
		{Path: "/bin/id", Link: "busybox"},
	}})
}

func TestImageBoots(t *testing.T) {
	for _, tt := range []struct {
		name, backend string
		btrfs         bool
	}{
		{"overlay", "overlay", false},
		{"btrfs-snapshot", "btrfs-snapshot", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			if tt.btrfs {
				w.state = testenv.Btrfs(t)
			}
			ref := markerImage(t, "marker-"+tt.name+"\n")
			args := []string{"--vmm", "qemu", "--image", ref, "--rootfs-backend", tt.backend, "--debug", "--", "cat", "/marker"}
			status, stdout, stderr := w.run("", args...)
			if status != 0 || stdout != "marker-"+tt.name+"\n" {
				t.Fatalf("loftd %q = %d, stdout %q; want 0 and the marker\nstderr:\n%s", args, status, stdout, stderr)
			}
			if !strings.Contains(stderr, "backend="+tt.backend) {
				t.Errorf("--debug does not say the task root backend %s:\n%s", tt.backend, stderr)
			}
			if tasks, _ := os.ReadDir(filepath.Join(w.state, "loftd", "tasks")); len(tasks) != 0 {
				t.Errorf("task state left after the run: %v", tasks)
			}
			// The second run is a cache hit: nothing is copied.
			status, stdout, stderr = w.run("", args...)
			if status != 0 || !strings.Contains(stderr, "cache_hit=true") {
				t.Errorf("second run: status %d, stdout %q; want a cache hit\n%s", status, stdout, stderr)
			}
		})
	}
}

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

func TestImagesListAndGC(t *testing.T) {
	w := newWorld(t)
	ref := markerImage(t, "gc\n")
	if status, _, stderr := w.run("", "--vmm", "qemu", "--image", ref, "--", "cat", "/marker"); status != 0 {
		t.Fatalf("run: status %d\n%s", status, stderr)
	}
	sub := func(args ...string) string {
		t.Helper()
		c := w.cmd()
		c.Args = append([]string{bins.loftd}, args...)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("loftd %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := sub("images"); !strings.Contains(out, ref) || !strings.Contains(out, "sha256:") {
		t.Errorf("loftd images after a run = %q, want %s listed with its digest", out, ref)
	}
	// Used a moment ago: gc --images (unused for 7 days by default) keeps
	// it; --all removes every image no running task uses.
	if out := sub("gc", "--images"); strings.Contains(out, "removed image") {
		t.Errorf("loftd gc --images = %q, want the image used a moment ago kept", out)
	}
	if out := sub("gc", "--images", "--all"); !strings.Contains(out, "removed image "+ref) {
		t.Errorf("loftd gc --images --all = %q, want it to remove %s", out, ref)
	}
	if out := sub("images"); strings.Contains(out, ref) {
		t.Errorf("loftd images after gc --images --all = %q, still lists %s", out, ref)
	}
}

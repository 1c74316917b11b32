package rootfs

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

// TestResolveTransports resolves the same image through the archive
// transports (made from the test's OCI layout with containers/image).
func TestResolveTransports(t *testing.T) {
	testenv.RequireRoot(t)
	ref := buildImage(t)
	dir := t.TempDir()
	refs := []string{
		ref,
		"oci-archive:" + filepath.Join(dir, "img.oci.tar") + ":v1",
		"docker-archive:" + filepath.Join(dir, "img.docker.tar") + ":loftd/test:v1",
	}
	for _, dst := range refs[1:] {
		rootfstest.Copy(t, ref, dst)
	}
	s := openStore(t, t.TempDir(), "auto")
	for _, r := range refs {
		img, err := s.Resolve(context.Background(), r, PullMissing, nil)
		if err != nil {
			t.Errorf("Resolve(%q) = %v", r, err)
			continue
		}
		task, err := s.NewTask(context.Background(), img, filepath.Join(t.TempDir(), "task"), BackendAuto)
		if err != nil {
			t.Fatalf("NewTask(%q) = %v", r, err)
		}
		checkFiles(t, task.Root, imageFiles)
		if err := task.Remove(); err != nil {
			t.Errorf("Remove() = %v", err)
		}
		if again, err := s.Resolve(context.Background(), r, PullMissing, nil); err != nil || !again.CacheHit || again.ID != img.ID {
			t.Errorf("second Resolve(%q) = %+v, %v, want a cache hit of %s", r, again, err, img.ID)
		}
	}
}

// TestResolveFirstUse resolves each transport on a store never used before
// (containers/image's temporary directory did not exist until a pull).
func TestResolveFirstUse(t *testing.T) {
	testenv.RequireRoot(t)
	ref := buildImage(t)
	dir := t.TempDir()
	refs := []string{
		ref,
		"oci-archive:" + filepath.Join(dir, "img.oci.tar") + ":v1",
		"docker-archive:" + filepath.Join(dir, "img.docker.tar") + ":loftd/test:v1",
	}
	for _, dst := range refs[1:] {
		rootfstest.Copy(t, ref, dst)
	}
	for _, r := range refs {
		s := openStore(t, t.TempDir(), "auto")
		if _, err := s.Resolve(context.Background(), r, PullMissing, nil); err != nil {
			t.Errorf("Resolve(%q) on a new store = %v", r, err)
		}
	}
}

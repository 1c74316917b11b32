package rootfs

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/containers/image/v5/copy"
	"github.com/containers/image/v5/signature"
	"github.com/containers/image/v5/transports/alltransports"
	"github.com/loftd/loftd/internal/testenv"
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
		copyImage(t, ref, dst)
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
		copyImage(t, ref, dst)
	}
	for _, r := range refs {
		s := openStore(t, t.TempDir(), "auto")
		if _, err := s.Resolve(context.Background(), r, PullMissing, nil); err != nil {
			t.Errorf("Resolve(%q) on a new store = %v", r, err)
		}
	}
}

func copyImage(t *testing.T, src, dst string) {
	t.Helper()
	sr, err := alltransports.ParseImageName(src)
	if err != nil {
		t.Fatal(err)
	}
	dr, err := alltransports.ParseImageName(dst)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := signature.NewPolicyContext(&signature.Policy{Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Destroy()
	if _, err := copy.Image(context.Background(), pc, dr, sr, &copy.Options{}); err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

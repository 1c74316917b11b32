package rootfs

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

// TestRemoveByLastUse: Remove deletes from a real store exactly the images
// its selector picks by last use (what `gc --images --older-than` does),
// and the recently used image stays resolvable from the cache.
func TestRemoveByLastUse(t *testing.T) {
	testenv.RequireRoot(t)
	s := openStore(t, t.TempDir(), "vfs")
	ctx := context.Background()
	var imgs []*Image
	for _, name := range []string{"old", "recent"} {
		ref := rootfstest.Build(t, rootfstest.Spec{
			Dir: filepath.Join(t.TempDir(), "layout"), Tag: name,
			Files: []rootfstest.File{{Path: "/" + name, Mode: 0o644, Content: []byte(name + "\n")}},
		})
		img, err := s.Resolve(ctx, ref, PullMissing, nil)
		if err != nil {
			t.Fatalf("Resolve(%q) = %v", ref, err)
		}
		imgs = append(imgs, img)
	}
	old, recent := imgs[0], imgs[1]
	// Backdate the first image's last use by 30 days.
	err := s.withCache(func(c *cacheFile) (bool, error) {
		c.Images[old.Digest].LastUsed = time.Now().Add(-30 * 24 * time.Hour)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cutoff := time.Now().Add(-7 * 24 * time.Hour)
	removed, err := s.Remove(func(im ImageInfo) bool { return im.LastUsed.Before(cutoff) })
	if err != nil {
		t.Fatalf("Remove = %v", err)
	}
	if len(removed) != 1 || removed[0].Digest != old.Digest {
		t.Fatalf("Remove(older than 7d) removed %+v, want only %s", removed, old.Digest)
	}
	if _, err := s.store.Image(old.ID); err == nil {
		t.Errorf("image %s is still in containers/storage after Remove", old.ID)
	}
	left, err := s.Images()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].Digest != recent.Digest {
		t.Errorf("Images() after Remove = %+v, want only %s", left, recent.Digest)
	}
	if _, err := s.store.Image(recent.ID); err != nil {
		t.Errorf("the recently used image %s is gone from containers/storage: %v", recent.ID, err)
	}
}

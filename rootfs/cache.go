package rootfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/containers/storage"
	"github.com/loftd/loftd/internal/atomicfile"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// cacheFile is STATE/images/loftd-cache.json: what containers/storage does
// not know, i.e. which manifest digest each image came from and which
// reference last resolved to which digest.
type cacheFile struct {
	Images map[string]*cacheEntry `json:"images"` // manifest digest → entry
	Tags   map[string]string      `json:"tags"`   // reference → manifest digest
}

type cacheEntry struct {
	ID       string    `json:"id"`
	TopLayer string    `json:"top_layer"`
	Size     int64     `json:"size"`
	Refs     []string  `json:"refs"`
	Pulled   time.Time `json:"pulled"`
	LastUsed time.Time `json:"last_used"`
}

// ImageInfo describes one cached image for `loftd images`.
type ImageInfo struct {
	Refs     []string
	Digest   string
	ID       string
	Size     int64
	Pulled   time.Time
	LastUsed time.Time
}

func (s *Store) cachePath() string { return filepath.Join(s.root, "loftd-cache.json") }

// withCache runs fn on the cache metadata under an exclusive flock and
// writes it back (atomically) when fn reports a change.
func (s *Store) withCache(fn func(c *cacheFile) (changed bool, err error)) error {
	lf, err := os.OpenFile(filepath.Join(s.root, "loftd-cache.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock image cache: %w", err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock image cache: %w", err)
	}
	c := &cacheFile{Images: map[string]*cacheEntry{}, Tags: map[string]string{}}
	b, err := os.ReadFile(s.cachePath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read image cache: %w", err)
	default:
		if err := json.Unmarshal(b, c); err != nil {
			return fmt.Errorf("read image cache %s: %w (remove it to rebuild the cache)", s.cachePath(), err)
		}
		if c.Images == nil {
			c.Images = map[string]*cacheEntry{}
		}
		if c.Tags == nil {
			c.Tags = map[string]string{}
		}
	}
	changed, err := fn(c)
	if err != nil || !changed {
		return err
	}
	out, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("write image cache: %w", err)
	}
	if err := atomicfile.WriteFile(s.cachePath(), out, 0o600); err != nil {
		return fmt.Errorf("write image cache: %w", err)
	}
	return nil
}

// lookupRef returns the image ref last resolved to, if still in the store.
func (s *Store) lookupRef(ref string) (*Image, error) {
	var img *Image
	err := s.withCache(func(c *cacheFile) (bool, error) {
		d, ok := c.Tags[ref]
		if !ok {
			return false, nil
		}
		img = s.hit(c, ref, d)
		if img == nil {
			delete(c.Tags, ref)
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	return img, nil
}

// lookupDigest returns the cached image with manifest digest d, recording
// ref as a name for it.
func (s *Store) lookupDigest(ref string, d digest.Digest) (*Image, error) {
	var img *Image
	err := s.withCache(func(c *cacheFile) (bool, error) {
		img = s.hit(c, ref, d.String())
		if img != nil {
			c.Tags[ref] = d.String()
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	return img, nil
}

// hit checks that the entry for digest d still exists in the store, marks
// it used, and returns it; a vanished image drops its entry.
func (s *Store) hit(c *cacheFile, ref, d string) *Image {
	e, ok := c.Images[d]
	if !ok {
		return nil
	}
	if _, err := s.store.Image(e.ID); err != nil {
		s.log.Debug("cached image vanished from the store", "digest", d, "id", e.ID, "err", err)
		delete(c.Images, d)
		return nil
	}
	e.LastUsed = time.Now().UTC()
	if !slices.Contains(e.Refs, ref) {
		e.Refs = append(e.Refs, ref)
	}
	return &Image{Ref: ref, Digest: d, ID: e.ID, TopLayer: e.TopLayer, Size: e.Size, CacheHit: true}
}

func (s *Store) record(img *Image) error {
	return s.withCache(func(c *cacheFile) (bool, error) {
		now := time.Now().UTC()
		e := c.Images[img.Digest]
		if e == nil {
			e = &cacheEntry{Pulled: now}
			c.Images[img.Digest] = e
		}
		e.ID, e.TopLayer, e.Size, e.LastUsed = img.ID, img.TopLayer, img.Size, now
		if !slices.Contains(e.Refs, img.Ref) {
			e.Refs = append(e.Refs, img.Ref)
		}
		c.Tags[img.Ref] = img.Digest
		return true, nil
	})
}

// Images lists the cache, most recently used first.
func (s *Store) Images() ([]ImageInfo, error) {
	var out []ImageInfo
	err := s.withCache(func(c *cacheFile) (bool, error) {
		for d, e := range c.Images {
			out = append(out, ImageInfo{Refs: slices.Clone(e.Refs), Digest: d, ID: e.ID, Size: e.Size, Pulled: e.Pulled, LastUsed: e.LastUsed})
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, nil
}

// RemoveUnused deletes every cached image that keep does not name (by
// reference, digest or ID) and returns what it removed. Callers pass the
// images of running tasks: overlay task roots read the image's layers.
func (s *Store) RemoveUnused(keep ...string) ([]ImageInfo, error) {
	return s.Remove(func(im ImageInfo) bool { return !im.Named(keep...) })
}

// Named reports whether any of names is the image's digest, ID or one of
// its references.
func (im ImageInfo) Named(names ...string) bool {
	return slices.Contains(names, im.Digest) || slices.Contains(names, im.ID) ||
		slices.ContainsFunc(im.Refs, func(r string) bool { return slices.Contains(names, r) })
}

// Remove deletes every cached image pick selects and returns what it
// removed. pick sees each image once, under the cache lock, so a run that
// marks an image used waits for the decision.
func (s *Store) Remove(pick func(ImageInfo) bool) ([]ImageInfo, error) {
	var removed []ImageInfo
	var errs []error
	err := s.withCache(func(c *cacheFile) (bool, error) {
		for d, e := range c.Images {
			im := ImageInfo{Refs: slices.Clone(e.Refs), Digest: d, ID: e.ID, Size: e.Size, Pulled: e.Pulled, LastUsed: e.LastUsed}
			if !pick(im) {
				continue
			}
			if _, err := s.store.DeleteImage(e.ID, true); err != nil && !errors.Is(err, storage.ErrImageUnknown) {
				errs = append(errs, fmt.Errorf("remove image %s: %w", d, err))
				continue
			}
			removed = append(removed, im)
			delete(c.Images, d)
			for r, td := range c.Tags {
				if td == d {
					delete(c.Tags, r)
				}
			}
		}
		return true, nil
	})
	return removed, errors.Join(append(errs, err)...)
}

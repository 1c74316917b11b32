package rootfs

import (
	"fmt"
	"slices"

	"github.com/containers/image/v5/transports"
	"github.com/containers/image/v5/transports/alltransports"
	"github.com/containers/image/v5/types"
	"github.com/containers/storage"
)

// Containers is the containers/storage store underneath, for a builder
// (imagebuild) that writes images into it. Images it makes are invisible to
// Resolve until AddLocal records them.
func (s *Store) Containers() storage.Store { return s.store }

// SystemContext is the containers/image context Resolve uses: loftd's
// signature policy and the store's temporary directory.
func (s *Store) SystemContext() *types.SystemContext { return s.systemContext() }

// AddLocal records the image the store names name (e.g. one just built) in
// the cache under that name, so Resolve(name) finds it without a source to
// pull from and `loftd images` and `loftd gc --images` see it.
func (s *Store) AddLocal(name string) (*Image, error) {
	src, err := alltransports.ParseImageName(NormalizeRef(name))
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", name, err)
	}
	key := transports.ImageName(src)
	simg, err := s.store.Image(name)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", name, err)
	}
	if simg.Digest == "" {
		return nil, fmt.Errorf("record %s: image %s has no manifest digest", name, simg.ID)
	}
	size, err := s.store.ImageSize(simg.ID)
	if err != nil {
		return nil, fmt.Errorf("record %s: image size: %w", name, err)
	}
	if s.driver == DriverBtrfs {
		// As after a pull: write the new layers back now, so the first
		// task snapshot stays O(1).
		if err := syncFS(s.root); err != nil {
			return nil, fmt.Errorf("record %s: %w", name, err)
		}
	}
	img := &Image{Ref: key, Digest: simg.Digest.String(), ID: simg.ID, TopLayer: simg.TopLayer, Size: size}
	// A rebuild moves the name: the entry of the image it named before
	// loses it, so `loftd images` shows one image per name.
	err = s.withCache(func(c *cacheFile) (bool, error) {
		for d, e := range c.Images {
			if d != img.Digest {
				e.Refs = slices.DeleteFunc(e.Refs, func(r string) bool { return r == key })
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", name, err)
	}
	if err := s.record(img); err != nil {
		return nil, fmt.Errorf("record %s: %w", name, err)
	}
	return img, nil
}

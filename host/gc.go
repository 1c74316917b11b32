package host

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/imagebuild"
	"github.com/loftd/loftd/rootfs"
)

// imageGC says which images `gc --images` removes: with all, every image
// no live task uses; else those unused since before cutoff too.
type imageGC struct {
	all    bool
	cutoff time.Time
	keep   []string // digests of the images live tasks use
}

func (g imageGC) remove(im rootfs.ImageInfo) bool {
	if im.Named(g.keep...) {
		return false
	}
	return g.all || im.LastUsed.Before(g.cutoff)
}

// gcStore opens the image store, removes what killed builds left in it
// (working containers and their mounts; none while a build runs), and with
// g removes the cached images it selects (never one a live task uses).
// Closing the store clears the mount counts a killed run left. A state
// without a store is left without one.
func gcStore(e *env, cfg *session.Config, st state.State, g *imageGC) (err error) {
	if _, err := os.Stat(st.Images()); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if g != nil {
		tasks, err := st.ListTasks()
		if err != nil {
			return err
		}
		for _, t := range tasks {
			if rec, err := rootfs.ReadTaskRecord(t.Dir); err == nil && t.Alive {
				g.keep = append(g.keep, rec.Digest)
			}
		}
	}
	store, err := session.OpenStore(e.IO, cfg, st, "")
	if err != nil {
		return err
	}
	stale, err := imagebuild.CleanStale(store, e.Log)
	for _, id := range stale.Removed {
		fmt.Fprintf(e.Stdout, "removed working container %.12s of a killed build\n", id)
	}
	defer func() {
		cerr := store.Close()
		if stale.Busy && errors.Is(cerr, rootfs.ErrLayerMounted) {
			// The running build's own mounts: not debris.
			e.Log.Info("an image build is running: its working containers stay")
			cerr = nil
		}
		err = errors.Join(err, cerr)
	}()
	if err != nil || g == nil {
		return err
	}
	removed, err := store.Remove(g.remove)
	for _, im := range removed {
		fmt.Fprintf(e.Stdout, "removed image %s %s (%s, last used %s)\n", strings.Join(im.Refs, ","), shortDigest(im.Digest), humanSize(im.Size), im.LastUsed.Local().Format(time.DateTime))
	}
	return err
}

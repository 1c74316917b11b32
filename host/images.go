package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/imagebuild"
	"github.com/loftd/loftd/rootfs"
)

// defaultImage is used when no --image is given and it is in the cache.
const defaultImage = "localhost/loftd:latest"

// storeInNamespace enters the keep-id namespace (the store belongs to its
// ids) and opens the image store: the common start of images and image
// build/import. The caller closes the store.
func (e *env) storeInNamespace() (*rootfs.Store, error) {
	cfg, st, err := e.stateInNamespace()
	if err != nil {
		return nil, err
	}
	return e.openStore(cfg, st)
}

func (e *env) openStore(cfg *Config, st state.State) (*rootfs.Store, error) {
	store, err := rootfs.Open(rootfs.Options{Root: st.Images(), RunRoot: runRoot(e.getenv), Driver: cfg.Rootfs.Driver, Log: e.log})
	if err != nil {
		return nil, err
	}
	name, why := store.Driver()
	e.log.Debug("image store", "root", st.Images(), "driver", name, "why", why)
	return store, nil
}

// prepareImageRoot resolves the image (a cache hit does no network and no
// copy) and materializes the task's private root from it.
func (s *session) prepareImageRoot() error {
	ctx := s.ctx // a stop signal cancels the pull and the ingestion
	store, err := s.e.openStore(s.cfg, s.state)
	if err != nil {
		return err
	}
	s.undo = append(s.undo, store.Close)
	img, err := s.resolveImage(ctx, store)
	if err != nil {
		return err
	}
	task, err := store.NewTask(ctx, img, s.taskDir, s.opts.Backend)
	if err != nil {
		return err
	}
	s.e.log.Debug("task root", "path", task.Root, "backend", task.Backend, "why", task.Reason, "image", img.Ref, "digest", img.Digest, "cache_hit", img.CacheHit)
	s.keepTaskRoot(task)
	return nil
}

func (s *session) resolveImage(ctx context.Context, store *rootfs.Store) (*rootfs.Image, error) {
	policy, err := rootfs.ParsePullPolicy(s.cfg.Image.Pull)
	if err != nil {
		return nil, err
	}
	if s.opts.PullLatest {
		policy = rootfs.PullAlways
	}
	progress := rootfs.ProgressWriter(os.Stderr)
	ref := s.opts.Image
	if ref == "" {
		img, err := store.Resolve(ctx, defaultImage, rootfs.PullNever, nil)
		if err == nil {
			return img, nil
		}
		if !errors.Is(err, rootfs.ErrImageNotFound) {
			return nil, err
		}
		if ref = s.cfg.Image.Default; ref == "" {
			if built, err := s.offerBuild(ctx, store); err != nil || built {
				if err != nil {
					return nil, err
				}
				return store.Resolve(ctx, defaultImage, rootfs.PullNever, nil)
			}
			return nil, fmt.Errorf("no image: the default image %s is not built; %s; or pass --image REF or --rootfs DIR", defaultImage, buildHint)
		}
	}
	return store.Resolve(ctx, ref, policy, progress)
}

// runRoot is containers/storage's run-time directory: /run/loftd as real
// root, else under the user's XDG_RUNTIME_DIR (it must be the user's own;
// EnterKeepID sets it in the namespace).
func runRoot(getenv func(string) string) string {
	_, _, inside := rootfs.KeepIDUser()
	if os.Geteuid() == 0 && !inside {
		return "/run/loftd"
	}
	if rt := getenv("XDG_RUNTIME_DIR"); rt != "" {
		return filepath.Join(rt, "loftd")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("loftd-run-%d", os.Getuid()))
}

func runImages(e *env, args []string) error {
	fs := e.newFlagSet("images", e.prog+" images [--format table|json]")
	format := formatFlag(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := checkFormat("images", *format); err != nil {
		return err
	}
	store, err := e.storeInNamespace()
	if err != nil {
		return err
	}
	defer store.Close()
	imgs, err := store.Images()
	if err != nil {
		return err
	}
	return printImages(e.stdout, *format, imgs)
}

func printImages(w io.Writer, format string, imgs []rootfs.ImageInfo) error {
	if format == "json" {
		out := make([]imageJSON, 0, len(imgs))
		for _, im := range imgs {
			out = append(out, imageJSON{Refs: im.Refs, Digest: im.Digest, ID: im.ID, Size: im.Size, Pulled: im.Pulled, LastUsed: im.LastUsed})
		}
		return writeJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REFERENCE\tDIGEST\tSIZE\tLAST USED")
	for _, im := range imgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.Join(im.Refs, ","), shortDigest(im.Digest), humanSize(im.Size), im.LastUsed.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return d[:len(d)-len(hex)] + hex[:12]
	}
	return d
}

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
func (e *env) gcStore(cfg *Config, st state.State, g *imageGC) (err error) {
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
	store, err := e.openStore(cfg, st)
	if err != nil {
		return err
	}
	stale, err := imagebuild.CleanStale(store, e.log)
	for _, id := range stale.Removed {
		fmt.Fprintf(e.stdout, "removed working container %.12s of a killed build\n", id)
	}
	defer func() {
		cerr := store.Close()
		if stale.Busy && errors.Is(cerr, rootfs.ErrLayerMounted) {
			// The running build's own mounts: not debris.
			e.log.Info("an image build is running: its working containers stay")
			cerr = nil
		}
		err = errors.Join(err, cerr)
	}()
	if err != nil || g == nil {
		return err
	}
	removed, err := store.Remove(g.remove)
	for _, im := range removed {
		fmt.Fprintf(e.stdout, "removed image %s %s (%s, last used %s)\n", strings.Join(im.Refs, ","), shortDigest(im.Digest), humanSize(im.Size), im.LastUsed.Local().Format(time.DateTime))
	}
	return err
}

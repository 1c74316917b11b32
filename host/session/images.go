package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/images"
	"github.com/loftd/loftd/rootfs"
)

// BuildHint names the commands that make the default image, for the error
// of a run that finds none.
const BuildHint = "build it with: loftd image build (no registry here? scripts/make-base base.tar && loftd image import base.tar && loftd image build --base " + images.DefaultBase + ")"

// defaultImage is used when no --image is given and it is in the cache.
const defaultImage = "localhost/loftd:latest"

// StoreInNamespace enters the keep-id namespace (the store belongs to its
// ids) and opens the image store: the common start of images and image
// build/import. The caller closes the store.
func StoreInNamespace(e IO, authFlag string) (*rootfs.Store, error) {
	cfg, st, err := StateInNamespace(e)
	if err != nil {
		return nil, err
	}
	auth, err := AuthFile(authFlag, e.Getenv, cfg)
	if err != nil {
		return nil, err
	}
	return OpenStore(e, cfg, st, auth)
}

// AuthFile is the registry credentials file a pull uses: --authfile, else
// $REGISTRY_AUTH_FILE (as Podman and Buildah), else the config's [image]
// authfile, else "" (containers/image's default places). A relative path
// is made absolute here, before anything changes directory.
func AuthFile(flag string, getenv func(string) string, cfg *Config) (string, error) {
	p := flag
	for _, v := range []string{getenv("REGISTRY_AUTH_FILE"), cfg.Image.AuthFile} {
		if p == "" {
			p = v
		}
	}
	if p == "" {
		return "", nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("registry auth file %s: %w", p, err)
	}
	return abs, nil
}

// OpenStore opens the image store of st with cfg's storage driver and the
// registry credentials of authFile (AuthFile).
func OpenStore(e IO, cfg *Config, st state.State, authFile string) (*rootfs.Store, error) {
	store, err := rootfs.Open(rootfs.Options{Root: st.Images(), RunRoot: runRoot(e.Getenv), Driver: cfg.Rootfs.Driver, AuthFile: authFile, Log: e.Log})
	if err != nil {
		return nil, err
	}
	name, why := store.Driver()
	e.Log.Debug("image store", "root", st.Images(), "driver", name, "why", why)
	return store, nil
}

// resolveImage finds the session's image in store: opts.Image, else the
// default image when it is built, else cfg's default, else (agentbox, in a
// terminal) the one it offers to build.
func resolveImage(ctx context.Context, e IO, store *rootfs.Store, cfg *Config, opts *Options) (*rootfs.Image, error) {
	policy, err := rootfs.ParsePullPolicy(cfg.Image.Pull)
	if err != nil {
		return nil, err
	}
	if opts.PullLatest {
		policy = rootfs.PullAlways
	}
	progress := rootfs.ProgressWriter(os.Stderr)
	ref := opts.Image
	if ref == "" {
		img, err := store.Resolve(ctx, defaultImage, rootfs.PullNever, nil)
		if err == nil {
			return img, nil
		}
		if !errors.Is(err, rootfs.ErrImageNotFound) {
			return nil, err
		}
		if ref = cfg.Image.Default; ref == "" {
			if built, err := offerBuild(ctx, e, store); err != nil || built {
				if err != nil {
					return nil, err
				}
				return store.Resolve(ctx, defaultImage, rootfs.PullNever, nil)
			}
			return nil, fmt.Errorf("no image: the default image %s is not built; %s; or pass --image REF or --rootfs DIR", defaultImage, BuildHint)
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

package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containers/image/v5/copy"
	"github.com/containers/image/v5/docker"
	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/image/v5/manifest"
	"github.com/containers/image/v5/pkg/cli/environment"
	"github.com/containers/image/v5/signature"
	is "github.com/containers/image/v5/storage"
	"github.com/containers/image/v5/transports"
	"github.com/containers/image/v5/transports/alltransports"
	"github.com/containers/image/v5/types"
	"github.com/docker/distribution/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// ErrImageNotFound: the image is not in the cache and the pull policy
// forbids fetching it.
var ErrImageNotFound = errors.New("image not in the local cache")

// PullPolicy says when Resolve may contact the image's source.
type PullPolicy string

const (
	// PullMissing (default) uses the cached image a reference last resolved
	// to, fetching only when there is none.
	PullMissing PullPolicy = "missing"
	// PullAlways reads the source's manifest digest every time and copies
	// only when that digest is not cached.
	PullAlways PullPolicy = "always"
	// PullNever uses the cache only.
	PullNever PullPolicy = "never"
)

// ParsePullPolicy validates a user-supplied policy ("" means missing).
func ParsePullPolicy(s string) (PullPolicy, error) {
	switch p := PullPolicy(s); p {
	case "":
		return PullMissing, nil
	case PullMissing, PullAlways, PullNever:
		return p, nil
	}
	return "", fmt.Errorf("unknown pull policy %q (want missing, always or never)", s)
}

// Image is a resolved, cached image.
type Image struct {
	Ref      string // the reference as resolved, with its transport
	Digest   string // manifest digest of the source: the cache key
	ID       string // containers/storage image ID
	TopLayer string // containers/storage ID of the top layer
	Size     int64  // bytes on disk
	CacheHit bool   // true when nothing was copied
}

// NormalizeRef turns a user reference into transport:reference form; a name
// without a known transport prefix is a registry reference (docker://).
func NormalizeRef(ref string) string {
	if i := strings.Index(ref, ":"); i > 0 && transports.Get(ref[:i]) != nil {
		return ref
	}
	return "docker://" + ref
}

// Resolve returns the cached image for ref, copying it into the store when
// policy allows and requires it. A hit does no network and no copy.
func (s *Store) Resolve(ctx context.Context, ref string, policy PullPolicy, progress io.Writer) (*Image, error) {
	if policy == "" {
		policy = PullMissing
	}
	src, err := alltransports.ParseImageName(NormalizeRef(ref))
	if err != nil {
		return nil, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	name := transports.ImageName(src)
	if policy != PullAlways {
		img, err := s.lookupRef(name)
		if err != nil || img != nil {
			return img, err
		}
		if policy == PullNever {
			return nil, fmt.Errorf("resolve %s: %w (pull policy never: pull it once with policy missing)", name, ErrImageNotFound)
		}
	}
	sys := s.systemContext()
	dgst, err := manifestDigest(ctx, src, sys)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w%s", name, err, authHint(err, s.authFile))
	}
	if img, err := s.lookupDigest(name, dgst); err != nil || img != nil {
		return img, err
	}
	return s.pull(ctx, src, name, dgst, progress)
}

// manifestDigest reads the source's top-level manifest (for a registry, one
// GET of the manifest; no layer is read).
func manifestDigest(ctx context.Context, src types.ImageReference, sys *types.SystemContext) (digest.Digest, error) {
	is, err := src.NewImageSource(ctx, sys)
	if err != nil {
		return "", fmt.Errorf("open source: %w", err)
	}
	defer is.Close()
	blob, _, err := is.GetManifest(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("read manifest: %w", err)
	}
	d, err := manifest.Digest(blob)
	if err != nil {
		return "", fmt.Errorf("digest manifest: %w", err)
	}
	return d, nil
}

func (s *Store) systemContext() *types.SystemContext {
	sys := &types.SystemContext{
		SignaturePolicyPath:  s.policyPath,
		AuthFilePath:         s.authFile,
		BigFilesTemporaryDir: filepath.Join(s.root, "tmp"), // made by Open
	}
	// CONTAINERS_REGISTRIES_CONF, as Podman, Buildah and skopeo honour it
	// (a pod's mirror or insecure-registry settings come this way). It
	// cannot fail on a non-nil context.
	_ = environment.UpdateRegistriesConf(sys)
	return sys
}

// pull copies src into the store under a name derived from its digest, so
// the storage image and the cache entry name the same thing.
func (s *Store) pull(ctx context.Context, src types.ImageReference, name string, dgst digest.Digest, progress io.Writer) (*Image, error) {
	src = pinDigest(src, dgst)
	dest, err := is.Transport.ParseStoreReference(s.store, cacheName(dgst))
	if err != nil {
		return nil, fmt.Errorf("pull %s: storage reference: %w", name, err)
	}
	policy, err := signature.NewPolicyFromFile(s.policyPath)
	if err != nil {
		return nil, fmt.Errorf("pull %s: signature policy %s: %w", name, s.policyPath, err)
	}
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	defer pc.Destroy()
	sys := s.systemContext()
	s.log.Debug("pulling image", "ref", name, "digest", dgst)
	if _, err := copy.Image(ctx, pc, dest, src, &copy.Options{
		ReportWriter: progress, SourceCtx: sys, DestinationCtx: sys,
	}); err != nil {
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	_, simg, err := is.ResolveReference(dest)
	if err != nil {
		return nil, fmt.Errorf("pull %s: find copied image: %w", name, err)
	}
	size, err := s.store.ImageSize(simg.ID)
	if err != nil {
		return nil, fmt.Errorf("pull %s: image size: %w", name, err)
	}
	if s.driver == DriverBtrfs {
		// A snapshot first flushes its source's dirty data: write the new
		// layers back now, so the first task start stays O(1).
		if err := syncFS(s.root); err != nil {
			return nil, fmt.Errorf("pull %s: %w", name, err)
		}
	}
	img := &Image{Ref: name, Digest: dgst.String(), ID: simg.ID, TopLayer: simg.TopLayer, Size: size}
	if err := s.record(img); err != nil {
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	return img, nil
}

// pinDigest makes a registry source read exactly the manifest whose digest
// keyed the cache, even if the tag moves during the copy.
func pinDigest(src types.ImageReference, dgst digest.Digest) types.ImageReference {
	named := src.DockerReference()
	if src.Transport().Name() != docker.Transport.Name() || named == nil {
		return src
	}
	pinned, err := reference.WithDigest(reference.TrimNamed(named), dgst)
	if err != nil {
		return src
	}
	ref, err := docker.NewReference(pinned)
	if err != nil {
		return src
	}
	return ref
}

// cacheName is the storage name of a cached image: its manifest digest.
func cacheName(d digest.Digest) string {
	return "localhost/loftd-cache:" + d.Encoded()
}

// ProgressWriter returns f when it is a terminal and nil otherwise: pull
// progress bars belong on an interactive stderr, not in logs.
func ProgressWriter(f *os.File) io.Writer {
	if f == nil {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	return f
}

func syncFS(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return &os.PathError{Op: "syncfs", Path: path, Err: err}
	}
	return nil
}

// authHint names the fix for a registry that refused the pull for want of
// credentials: the error alone ("authentication required") does not say
// where loftd takes them from.
func authHint(err error, authFile string) string {
	var unauth docker.ErrUnauthorizedForCredentials
	var ec errcode.Error
	if !errors.As(err, &unauth) && !(errors.As(err, &ec) && ec.Code == errcode.ErrorCodeUnauthorized) {
		return ""
	}
	if authFile != "" {
		return fmt.Sprintf(" (the credentials in %s were refused)", authFile)
	}
	return " (give credentials with --authfile FILE, $REGISTRY_AUTH_FILE or [image] authfile: a containers-auth.json or a pull secret's .dockerconfigjson)"
}

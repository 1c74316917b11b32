// Package imagebuild builds container images into loftd's image store with
// Buildah's library: a Containerfile (`loftd image build`, the default guest
// image's recipe in package images) and a root filesystem tar imported as a
// base image (`loftd image import`, for machines without a registry). It
// records what it makes in the store's cache so a run resolves it like any
// cached image. It never imports host.
package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/containers/buildah/define"
	"github.com/containers/buildah/imagebuildah"
	nettypes "github.com/containers/common/libnetwork/types"
	"github.com/containers/image/v5/docker/reference"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/loftd/loftd/rootfs"
)

// Options configure Build.
type Options struct {
	// Containerfile is the recipe's text; when nil, File is read.
	Containerfile []byte
	// File is a Containerfile on disk (used when Containerfile is nil).
	File string
	// ContextDir is what COPY and ADD read: default File's directory, or an
	// empty directory for an in-memory recipe.
	ContextDir string
	// Tag names the image (default images.Default's value is the caller's
	// business); a name without a registry gets "localhost/", without a
	// tag ":latest", as Buildah would.
	Tag string
	// Args are the --build-arg values (BASE among them).
	Args map[string]string
	// NoCache rebuilds every step.
	NoCache bool
	// Out receives Buildah's step-by-step progress; nil discards it.
	Out io.Writer
	// Log receives debug lines; nil discards them.
	Log *slog.Logger
}

// noNetwork satisfies Buildah's network interface so it does not look for
// netavark or CNI: RUN shares the host's network namespace (see
// buildOptions), so Setup/Teardown are never called.
type noNetwork struct{ nettypes.ContainerNetwork }

// Build builds the recipe into store, tags it and records it in the cache.
// With layer caching on, a rebuild of an unchanged recipe on the same base
// reuses every step and returns the same image ID.
func Build(ctx context.Context, store *rootfs.Store, opts Options) (*rootfs.Image, error) {
	tag, err := NormalizeTag(opts.Tag)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	sys := store.SystemContext()
	if err := os.MkdirAll(sys.BigFilesTemporaryDir, 0o700); err != nil {
		return nil, fmt.Errorf("build %s: %w", tag, err)
	}
	lock, err := holdBuild(store, log)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", tag, err)
	}
	defer lock.Close()
	file, contextDir, err := inputs(opts, sys.BigFilesTemporaryDir)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", tag, err)
	}
	if opts.Containerfile != nil {
		defer os.RemoveAll(filepath.Dir(file))
	}
	bo := buildOptions(tag, contextDir, opts, sys.SignaturePolicyPath, out)
	bo.SystemContext = sys
	log.Debug("building image", "tag", tag, "file", file, "context", contextDir, "args", opts.Args, "isolation", "chroot", "layers", bo.Layers)
	id, _, err := imagebuildah.BuildDockerfiles(ctx, store.Containers(), bo, file)
	if err != nil {
		return nil, fmt.Errorf("build %s from %s: %w", tag, file, err)
	}
	img, err := store.AddLocal(tag)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", tag, err)
	}
	if img.ID != id {
		return nil, fmt.Errorf("build %s: store names image %s, Buildah built %s", tag, img.ID, id)
	}
	return img, nil
}

// inputs returns the Containerfile and context directory to build. An
// in-memory recipe is written to a directory of its own under tmpDir
// (the file's directory; the caller removes it), with an empty context
// unless one is given. A file on disk is resolved by Containerfile.
func inputs(opts Options, tmpDir string) (file, contextDir string, err error) {
	file, contextDir = opts.File, opts.ContextDir
	if opts.Containerfile != nil {
		tmp, err := os.MkdirTemp(tmpDir, tmpPrefix)
		if err != nil {
			return "", "", err
		}
		file = filepath.Join(tmp, "Containerfile")
		if err := os.WriteFile(file, opts.Containerfile, 0o644); err != nil {
			return "", "", errors.Join(err, os.RemoveAll(tmp))
		}
		if contextDir == "" {
			// An empty context: the recipe's text is the whole input.
			contextDir = filepath.Join(tmp, "context")
			if err := os.Mkdir(contextDir, 0o755); err != nil {
				return "", "", errors.Join(err, os.RemoveAll(tmp))
			}
		}
		return file, contextDir, nil
	}
	if file == "" {
		return "", "", errors.New("no Containerfile given")
	}
	if file, err = Containerfile(file); err != nil {
		return "", "", fmt.Errorf("Containerfile %w", err)
	}
	if contextDir == "" {
		contextDir = filepath.Dir(file)
	}
	return file, contextDir, nil
}

// buildOptions are the Buildah options of every build: see the comments on
// isolation and network for the why.
func buildOptions(tag, contextDir string, opts Options, policy string, out io.Writer) define.BuildOptions {
	args := map[string]string{}
	for k, v := range opts.Args {
		args[k] = v
	}
	return define.BuildOptions{
		ContextDirectory: contextDir,
		Output:           tag,
		Args:             args,
		// A FROM that the store has (an imported base, a previous pull)
		// is used as is; only a missing one is pulled.
		PullPolicy: define.PullIfMissing,
		// Chroot isolation runs RUN through Buildah's own re-exec of this
		// binary (imagebuild.InitReexec): no OCI runtime, no cgroup manager,
		// no conmon, and it works as real root and as the root of loftd's
		// keep-id namespace alike.
		Isolation: define.IsolationChroot,
		// RUN uses the host's network (apt-get needs the mirror): no
		// network namespace, so no CNI/netavark to configure.
		NamespaceOptions: define.NamespaceOptions{{Name: string(specs.NetworkNamespace), Host: true}},
		ConfigureNetwork: define.NetworkEnabled,
		NetworkInterface: noNetwork{},
		CommonBuildOpts:  &define.CommonBuildOptions{Ulimit: inheritedUlimits()},
		// Layers: every step is committed, so an unchanged rebuild is a
		// cache hit.
		Layers:                  true,
		NoCache:                 opts.NoCache,
		RemoveIntermediateCtrs:  true,
		ForceRmIntermediateCtrs: true,
		OutputFormat:            define.OCIv1ImageManifest,
		SignaturePolicyPath:     policy,
		Out:                     out,
		Err:                     out,
		ReportWriter:            out,
	}
}

// inheritedUlimits gives RUN this process's own open-file and process
// limits. Buildah's default as real root is 1048576, and raising a hard
// limit needs CAP_SYS_RESOURCE, which root in a container (CI) may lack:
// the step then fails with "setting RLIMIT_NOFILE ... operation not
// permitted".
func inheritedUlimits() []string {
	var out []string
	for _, l := range []struct {
		name     string
		resource int
	}{{"nofile", unix.RLIMIT_NOFILE}, {"nproc", unix.RLIMIT_NPROC}} {
		var r unix.Rlimit
		if err := unix.Getrlimit(l.resource, &r); err == nil {
			out = append(out, fmt.Sprintf("%s=%d:%d", l.name, int64(r.Cur), int64(r.Max)))
		}
	}
	return out
}

// NormalizeTag gives a name Buildah's defaults: a name without a registry
// is under localhost/, a name without a tag is :latest.
func NormalizeTag(tag string) (string, error) {
	if tag == "" {
		return "", errors.New("image tag: none given")
	}
	orig := tag
	first, _, hasSlash := strings.Cut(tag, "/")
	if !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		tag = "localhost/" + tag
	}
	named, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		return "", fmt.Errorf("image tag %q: %w", orig, err)
	}
	return reference.TagNameOnly(named).String(), nil
}

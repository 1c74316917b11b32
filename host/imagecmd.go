package host

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/imagebuild"
	"github.com/loftd/loftd/images"
	"github.com/loftd/loftd/rootfs"
)

// runImage dispatches `loftd image build|import`.
func runImage(e *env, args []string) error {
	usage := e.Prog + " image build|import|push [flags]"
	if len(args) == 0 {
		return session.Usagef("image: want a subcommand (%s)", usage)
	}
	switch args[0] {
	case "build":
		return runImageBuild(e, args[1:])
	case "import":
		return runImageImport(e, args[1:])
	case "push":
		return runImagePush(e, args[1:])
	case "-h", "--help":
		fmt.Fprintf(e.Stdout, "Usage: %s\n\n  build   build a Containerfile (default: loftd's own recipe) into the image store\n  import  make a base image from a root filesystem tar (scripts/make-base)\n  push    copy an image of the store to a registry or an archive\n", usage)
		return nil
	}
	return session.Usagef("image: unknown subcommand %q (want build, import or push)", args[0])
}

func runImageBuild(e *env, args []string) error {
	fs := e.newFlagSet("image build", e.Prog+" image build [--tag NAME] [--file Containerfile] [--base REF] [--build-arg KEY=VAL]… [CONTEXT]")
	tag := fs.String("tag", images.Default, "name of the image")
	file := fs.String("file", "", "Containerfile to build, relative to the current directory as with docker build -f, not to CONTEXT (default: loftd's default image recipe, built into loftd)")
	base := fs.String("base", "", "base image: sets the BASE build argument (e.g. "+images.DefaultBase+" after loftd image import)")
	buildArgs := fs.StringArray("build-arg", nil, "KEY=VAL build argument (repeatable)")
	noCache := fs.Bool("no-cache", false, "rebuild every step")
	authFile := fs.String("authfile", "", "registry credentials for FROM images (containers-auth.json)\n(default: $REGISTRY_AUTH_FILE, else [image] authfile, else containers' default places)")
	debug := fs.Bool("debug", false, "debug logs on stderr")
	err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return session.Usagef("image build: want at most one CONTEXT directory, got %q", fs.Args())
	}
	if _, err := imagebuild.NormalizeTag(*tag); err != nil {
		return session.Usagef("image build: --tag: %v", err)
	}
	opts := imagebuild.Options{Tag: *tag, NoCache: *noCache, Out: e.Stderr, Args: map[string]string{}}
	for _, a := range *buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return session.Usagef("image build: --build-arg %q: want KEY=VAL", a)
		}
		opts.Args[k] = v
	}
	if *base != "" {
		opts.Args["BASE"] = *base
	}
	// As docker build: a relative --file is relative to the current
	// directory, not to CONTEXT; an absolute one is used as it is.
	if *file == "" {
		opts.Containerfile = images.DefaultContainerfile
	} else if opts.File, err = imagebuild.Containerfile(*file); err != nil {
		return session.Usagef("image build: --file %v", err)
	}
	if fs.NArg() == 1 {
		if opts.ContextDir, err = imagebuild.ContextDir(fs.Arg(0)); err != nil {
			return session.Usagef("image build: CONTEXT %v", err)
		}
	}
	if *debug {
		e.Log = session.NewLogger(e.Stderr, true)
	}
	opts.Log = e.Log
	store, err := session.StoreInNamespace(e.IO, *authFile)
	if err != nil {
		return err
	}
	defer store.Close()
	start := time.Now()
	img, err := imagebuild.Build(context.Background(), store, opts)
	if err != nil {
		return err
	}
	e.Log.Info("image built", "ref", img.Ref, "id", shortDigest("sha256:"+img.ID), "size", megabytes(img.Size), "took", time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(e.Stdout, img.ID)
	return nil
}

func runImageImport(e *env, args []string) error {
	fs := e.newFlagSet("image import", e.Prog+" image import [--tag NAME] ROOTFS.tar")
	tag := fs.String("tag", images.DefaultBase, "name of the image")
	debug := fs.Bool("debug", false, "debug logs on stderr")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return session.Usagef("image import: want one root filesystem tar (make one with scripts/make-base OUT.tar)")
	}
	if _, err := imagebuild.NormalizeTag(*tag); err != nil {
		return session.Usagef("image import: --tag: %v", err)
	}
	tarPath, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		return session.Usagef("image import: %v", err)
	}
	if *debug {
		e.Log = session.NewLogger(e.Stderr, true)
	}
	store, err := session.StoreInNamespace(e.IO, "")
	if err != nil {
		return err
	}
	defer store.Close()
	start := time.Now()
	img, err := imagebuild.Import(context.Background(), store, tarPath, *tag)
	if err != nil {
		return err
	}
	e.Log.Info("image imported", "ref", img.Ref, "id", shortDigest("sha256:"+img.ID), "size", megabytes(img.Size), "took", time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(e.Stdout, img.ID)
	return nil
}

// checkImageBuild is doctor's line for `loftd image build`: RUN steps use
// chroot isolation (Buildah's re-exec of loftd itself, no OCI runtime) and
// the host's network, so building needs nothing beyond what a run needs;
// the offline base needs mmdebstrap.
func checkImageBuild() check {
	if p, err := exec.LookPath("mmdebstrap"); err == nil {
		return check{name: "image build", level: "ok", detail: "RUN steps: chroot isolation, host network; offline base: " + p}
	}
	return check{name: "image build", level: "warn",
		detail: "mmdebstrap not found: `loftd image build` needs a registry for its Debian base",
		fix:    "apt-get install mmdebstrap (then scripts/make-base base.tar && loftd image import base.tar)"}
}

// megabytes formats an image size for a log line (disks.FormatSize is exact
// and prints odd sizes in bytes).
func megabytes(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/1e6) }

func runImagePush(e *env, args []string) error {
	fs := e.newFlagSet("image push", e.Prog+" image push [--authfile FILE] IMAGE DEST")
	authFile := fs.String("authfile", "", "registry credentials for DEST (containers-auth.json)\n(default: $REGISTRY_AUTH_FILE, else [image] authfile, else containers' default places)")
	debug := fs.Bool("debug", false, "debug logs on stderr")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return session.Usagef("image push: want IMAGE and DEST (docker://REGISTRY/NAME:TAG, docker-archive:FILE:NAME:TAG, oci-archive:FILE, oci:DIR:TAG)")
	}
	if *debug {
		e.Log = session.NewLogger(e.Stderr, true)
	}
	store, err := session.StoreInNamespace(e.IO, *authFile)
	if err != nil {
		return err
	}
	defer store.Close()
	var progress io.Writer
	if f, ok := e.Stderr.(*os.File); ok {
		progress = rootfs.ProgressWriter(f) // only to a terminal
	}
	if err := store.Push(context.Background(), fs.Arg(0), fs.Arg(1), progress); err != nil {
		return err
	}
	e.Log.Info("image pushed", "image", fs.Arg(0), "to", fs.Arg(1))
	return nil
}

package imagebuild

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/containers/buildah"
	"github.com/containers/buildah/define"
	is "github.com/containers/image/v5/storage"

	"github.com/loftd/loftd/rootfs"
)

// defaultPath is Debian's official image's PATH: a root tar carries no
// image configuration, and RUN steps need one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Import makes an image named name from a root filesystem tar (e.g.
// scripts/make-base's mmdebstrap output): a scratch builder, the tar
// extracted with its ownership, PATH and a shell set, committed into
// store and recorded in its cache. It is the offline stand-in for pulling
// a base image from a registry.
func Import(ctx context.Context, store *rootfs.Store, tarPath, name string) (*rootfs.Image, error) {
	name, err := NormalizeTag(name)
	if err != nil {
		return nil, err
	}
	if err := checkRootTar(tarPath); err != nil {
		return nil, err
	}
	fi, err := os.Stat(tarPath)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", tarPath, err)
	}
	// The image's dates come from the tar, not the clock: importing the
	// same tar again makes the same image, so builds on it stay cached.
	created := fi.ModTime().UTC()
	sys := store.SystemContext()
	if err := os.MkdirAll(sys.BigFilesTemporaryDir, 0o700); err != nil {
		return nil, fmt.Errorf("import %s: %w", tarPath, err)
	}
	lock, err := holdBuild(store, nil)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", tarPath, err)
	}
	defer lock.Close()
	b, err := buildah.NewBuilder(ctx, store.Containers(), buildah.BuilderOptions{
		FromImage: "scratch", SignaturePolicyPath: sys.SignaturePolicyPath, SystemContext: sys,
		Isolation: define.IsolationChroot, NetworkInterface: noNetwork{},
		CommonBuildOpts: &define.CommonBuildOptions{}, Format: define.OCIv1ImageManifest,
	})
	if err != nil {
		return nil, fmt.Errorf("import %s: new builder: %w", tarPath, err)
	}
	defer b.Delete()
	if err := b.Add("/", true, buildah.AddAndCopyOptions{PreserveOwnership: true}, tarPath); err != nil {
		return nil, fmt.Errorf("import %s: extract: %w", tarPath, err)
	}
	b.SetOS("linux")
	b.SetArchitecture(runtime.GOARCH)
	b.SetEnv("PATH", defaultPath)
	b.SetCmd([]string{"/bin/bash"})
	b.SetHistoryComment("imported from " + tarPath)
	dest, err := is.Transport.ParseStoreReference(store.Containers(), name)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", tarPath, err)
	}
	if _, _, _, err := b.Commit(ctx, dest, buildah.CommitOptions{SystemContext: sys, SignaturePolicyPath: sys.SignaturePolicyPath, HistoryTimestamp: &created}); err != nil {
		return nil, fmt.Errorf("import %s: commit %s: %w", tarPath, name, err)
	}
	img, err := store.AddLocal(name)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", tarPath, err)
	}
	return img, nil
}

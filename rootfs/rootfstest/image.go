// Package rootfstest builds real OCI images for tests from local files, with
// the Buildah library and no registry: a scratch image holding exactly the
// files asked for, with exact ownership, modes, setuid bits and symlinks,
// committed to an OCI layout (oci:DIR:TAG). Test binaries that use it must
// call buildah.InitReexec() first in TestMain, run as root, and be built
// with cgo and the tag containers_image_openpgp.
//
// It imports only buildah, containers/* and internal/testenv; never host.
package rootfstest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"testing"

	"github.com/containers/buildah"
	"github.com/containers/buildah/define"
	nettypes "github.com/containers/common/libnetwork/types"
	"github.com/containers/image/v5/copy"
	"github.com/containers/image/v5/signature"
	"github.com/containers/image/v5/transports/alltransports"
	"github.com/containers/image/v5/types"
	"github.com/containers/storage"
	"github.com/loftd/loftd/internal/testenv"
)

// File is one entry of a test image.
type File struct {
	Path     string      // absolute path in the image
	Mode     os.FileMode // permission bits, plus os.ModeSetuid/ModeSetgid/ModeSticky; os.ModeDir for a directory
	UID, GID int
	Content  []byte // file contents
	Size     int64  // when Content is nil: Size pseudo-random (incompressible) bytes
	Link     string // when set: a symlink to Link
	HostPath string // when set: contents copied from this host file
}

// Spec describes an image to build.
type Spec struct {
	Dir   string // OCI layout directory (created)
	Tag   string // default "latest"
	Files []File
	// NoDefaults leaves out DefaultFiles (busybox and the ownership probes).
	NoDefaults bool
}

// Paths of DefaultFiles, for assertions.
const (
	Busybox    = "/bin/busybox"
	RootFile   = "/etc/loftd-root-owned"
	UserFile   = "/home/u1000/owned-by-1000"
	SetuidFile = "/usr/bin/loftd-setuid"
	Symlink    = "/bin/sh"
	UserUID    = 1000
)

// DefaultFiles is static busybox plus one file of each kind whose
// ownership and mode a task root must preserve.
func DefaultFiles() []File {
	return []File{
		{Path: "/bin", Mode: os.ModeDir | 0o755},
		{Path: Busybox, Mode: 0o755, HostPath: "/bin/busybox"},
		{Path: Symlink, Link: "busybox"},
		{Path: RootFile, Mode: 0o644, Content: []byte("root\n")},
		{Path: "/home/u1000", Mode: os.ModeDir | 0o750, UID: UserUID, GID: UserUID},
		{Path: UserFile, Mode: 0o600, UID: UserUID, GID: UserUID, Content: []byte("user\n")},
		{Path: SetuidFile, Mode: os.ModeSetuid | 0o755, Content: []byte("#!/bin/sh\nid\n")},
		{Path: "/tmp", Mode: os.ModeDir | os.ModeSticky | 0o777},
	}
}

// Build builds the image and returns its reference, "oci:DIR:TAG".
func Build(t testing.TB, spec Spec) string {
	t.Helper()
	testenv.RequireRoot(t)
	files := spec.Files
	if !spec.NoDefaults {
		testenv.Busybox(t)
		files = append(DefaultFiles(), files...)
	}
	if spec.Tag == "" {
		spec.Tag = "latest"
	}
	work := t.TempDir()
	layer := filepath.Join(work, "layer.tar")
	if err := writeTar(layer, files); err != nil {
		t.Fatalf("write layer: %v", err)
	}
	ref := fmt.Sprintf("oci:%s:%s", spec.Dir, spec.Tag)
	if err := commit(work, layer, ref); err != nil {
		t.Fatalf("build %s: %v", ref, err)
	}
	return ref
}

// noNetwork satisfies buildah's network interface: from/add/commit never
// call it, and this way buildah does not look for netavark.
type noNetwork struct{ nettypes.ContainerNetwork }

func commit(work, layer, ref string) error {
	policy := filepath.Join(work, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		return err
	}
	store, err := storage.GetStore(storage.StoreOptions{
		GraphRoot: filepath.Join(work, "root"), RunRoot: filepath.Join(work, "run"), GraphDriverName: "vfs",
	})
	if err != nil {
		return fmt.Errorf("open build store: %w", err)
	}
	defer store.Shutdown(true)
	ctx := context.Background()
	sys := &types.SystemContext{SignaturePolicyPath: policy}
	b, err := buildah.NewBuilder(ctx, store, buildah.BuilderOptions{
		FromImage: "scratch", SignaturePolicyPath: policy, SystemContext: sys,
		Isolation: define.IsolationChroot, NetworkInterface: noNetwork{},
		CommonBuildOpts: &define.CommonBuildOptions{}, Format: define.OCIv1ImageManifest,
	})
	if err != nil {
		return fmt.Errorf("new builder: %w", err)
	}
	defer b.Delete()
	if err := b.Add("/", true, buildah.AddAndCopyOptions{PreserveOwnership: true}, layer); err != nil {
		return fmt.Errorf("add layer: %w", err)
	}
	b.SetCmd([]string{"/bin/sh"})
	dest, err := alltransports.ParseImageName(ref)
	if err != nil {
		return err
	}
	if _, _, _, err := b.Commit(ctx, dest, buildah.CommitOptions{SystemContext: sys, SignaturePolicyPath: policy}); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// writeTar writes files as a tar archive, adding root-owned 0755 parent
// directories that files do not list.
func writeTar(name string, files []File) error {
	byPath := map[string]File{}
	for _, f := range files {
		byPath[path.Clean(f.Path)] = f
		for d := path.Dir(path.Clean(f.Path)); d != "/"; d = path.Dir(d) {
			if _, ok := byPath[d]; !ok {
				byPath[d] = File{Path: d, Mode: os.ModeDir | 0o755}
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths) // parents before children
	out, err := os.Create(name)
	if err != nil {
		return err
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	tw := tar.NewWriter(bw)
	for _, p := range paths {
		if err := writeEntry(tw, byPath[p]); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return out.Close()
}

func writeEntry(tw *tar.Writer, f File) error {
	h := &tar.Header{Name: f.Path[1:], Uid: f.UID, Gid: f.GID, Mode: int64(f.Mode.Perm()), Format: tar.FormatPAX}
	if f.Mode&os.ModeSetuid != 0 {
		h.Mode |= 0o4000
	}
	if f.Mode&os.ModeSetgid != 0 {
		h.Mode |= 0o2000
	}
	if f.Mode&os.ModeSticky != 0 {
		h.Mode |= 0o1000
	}
	var body io.Reader
	switch {
	case f.Link != "":
		h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
	case f.Mode.IsDir():
		h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
	case f.HostPath != "":
		b, err := os.ReadFile(f.HostPath)
		if err != nil {
			return err
		}
		h.Typeflag, h.Size, body = tar.TypeReg, int64(len(b)), bytes.NewReader(b)
	case f.Content != nil:
		h.Typeflag, h.Size, body = tar.TypeReg, int64(len(f.Content)), bytes.NewReader(f.Content)
	default:
		h.Typeflag, h.Size = tar.TypeReg, f.Size
		body = io.LimitReader(rand.NewChaCha8([32]byte{byte(f.Size), 'l', 'o', 'f', 't'}), f.Size)
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if body != nil {
		if _, err := io.Copy(tw, body); err != nil {
			return err
		}
	}
	return nil
}

// Copy copies the image src to dst (both transport references, such as
// "oci:DIR:TAG" and "docker-archive:FILE:NAME:TAG") with containers/image,
// accepting any signature: how tests make the archives a user would load.
func Copy(t testing.TB, src, dst string) {
	t.Helper()
	CopyTo(t, src, dst, nil)
}

// CopyTo is Copy with dst's SystemContext (credentials, TLS): how tests
// push into a registry they serve.
func CopyTo(t testing.TB, src, dst string, dstCtx *types.SystemContext) {
	t.Helper()
	sr, err := alltransports.ParseImageName(src)
	if err != nil {
		t.Fatal(err)
	}
	dr, err := alltransports.ParseImageName(dst)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := signature.NewPolicyContext(&signature.Policy{Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Destroy()
	if _, err := copy.Image(context.Background(), pc, dr, sr, &copy.Options{DestinationCtx: dstCtx}); err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

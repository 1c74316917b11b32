package imagebuild

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/containers/storage/pkg/archive"
	"golang.org/x/sys/unix"
)

// errNotRootTar is what checkRootTar's refusals wrap: the input is not
// what `loftd image import` takes.
var errNotRootTar = errors.New("want a root filesystem tar (plain, gzip, bzip2, xz or zstd), e.g. from scripts/make-base OUT.tar")

// checkRootTar reads the whole archive at path before anything touches the
// store. Buildah's Add copies what is not an archive as a plain file (a
// directory as its contents), so random bytes, an empty file or a directory
// would otherwise become an image, under a tag that may already name a
// good one. Reading to the end also refuses a truncated tar, whose error
// would surface mid-extraction as a Go struct dump.
func checkRootTar(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	switch {
	case fi.IsDir():
		return fmt.Errorf("import %s: a directory: %w", path, errNotRootTar)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("import %s: not a regular file (%s): %w", path, fi.Mode().Type(), errNotRootTar)
	case fi.Size() == 0:
		return fmt.Errorf("import %s: an empty file: %w", path, errNotRootTar)
	}
	rc, err := archive.DecompressStream(f)
	if err != nil {
		return fmt.Errorf("import %s: not a tar archive (%v): %w", path, err, errNotRootTar)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	entries := 0
	for {
		_, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			_, err = io.Copy(io.Discard, tr)
		}
		if err != nil {
			return fmt.Errorf("import %s: not a tar archive, or a damaged one (entry %d: %v): %w", path, entries+1, err, errNotRootTar)
		}
		entries++
	}
	if entries == 0 {
		return fmt.Errorf("import %s: a tar archive with no entries: %w", path, errNotRootTar)
	}
	return nil
}

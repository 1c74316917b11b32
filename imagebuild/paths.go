package imagebuild

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Containerfile resolves a Containerfile's path as `docker build -f`
// does: an absolute path as it is, a relative one against the current
// directory (never against the context), and checks that it is a regular
// file. Buildah would instead retry a path it cannot stat under the
// context directory (an absolute one too), and fetch one that starts with
// http://.
func Containerfile(path string) (string, error) {
	return existing(path, func(fi fs.FileInfo) bool { return fi.Mode().IsRegular() }, "not a regular file")
}

// ContextDir resolves a build context directory against the current
// directory and checks that it is one.
func ContextDir(path string) (string, error) {
	return existing(path, fs.FileInfo.IsDir, "not a directory")
}

func existing(path string, ok func(fs.FileInfo) bool, notOK string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%q: %w", path, err)
	}
	fi, err := os.Stat(abs)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is in the message already
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", abs, err)
	}
	if !ok(fi) {
		return "", fmt.Errorf("%s: %s", abs, notOK)
	}
	return abs, nil
}

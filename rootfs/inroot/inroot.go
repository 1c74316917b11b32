// Package inroot writes files inside a root filesystem whose contents are
// hostile: an image or a user's directory may plant symlinks anywhere in
// it (/.loftd -> /etc), and loftd, often as root, must never follow one out
// of the tree. Every step works relative to a directory file descriptor
// opened with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so no path
// component is ever resolved through a symlink.
//
// The roots loftd writes into are task-private (a snapshot or an overlay),
// so a planted symlink or file where loftd's own directory or file belongs
// is replaced, never followed. It imports only x/sys.
package inroot

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// noFollow resolves one name beneath a directory fd without following any
// symlink or magic link.
const noFollow = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// WriteFile writes data to name (an absolute path inside root, such as
// "/.loftd/guest-init") with mode. Missing parent directories are made with
// 0755; a parent that is a symlink or not a directory is replaced by a
// directory, and the file itself replaces whatever was at name (a symlink
// is replaced, not followed) by an atomic rename of a new file created with
// O_EXCL|O_NOFOLLOW. root itself is trusted: loftd made it.
func WriteFile(root, name string, r io.Reader, mode os.FileMode) error {
	dir, base, err := split(name)
	if err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("write %s in %s: %w", name, root, err) }
	dfd, err := openDir(root, dir)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(dfd)
	tmp, err := tempName(base)
	if err != nil {
		return fail(err)
	}
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		return fail(&os.PathError{Op: "create", Path: path.Join(dir, tmp), Err: err})
	}
	f := os.NewFile(uintptr(fd), path.Join(root, dir, tmp))
	_, err = io.Copy(f, r)
	if err == nil {
		// The umask may have narrowed the mode given to openat.
		err = f.Chmod(mode.Perm())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if rerr := unix.Renameat(dfd, tmp, dfd, base); rerr != nil {
			err = &os.PathError{Op: "rename", Path: name, Err: rerr}
		}
	}
	if err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return fail(err)
	}
	return nil
}

// Exists reports whether name exists inside root as the guest would see it:
// symlinks are followed, but resolved within root (RESOLVE_IN_ROOT), never
// on the host.
func Exists(root, name string) (bool, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, strings.TrimPrefix(path.Clean("/"+name), "/"), &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &os.PathError{Op: "resolve", Path: path.Join(root, name), Err: err}
	}
	unix.Close(fd)
	return true, nil
}

// split cleans name and returns its parent directory and base name; it
// refuses names that do not name a file below the root.
func split(name string) (dir, base string, err error) {
	clean := path.Clean("/" + name)
	if clean == "/" || strings.Contains(name, "..") {
		return "", "", fmt.Errorf("write %q inside a root: not a file path below the root", name)
	}
	return path.Dir(clean), path.Base(clean), nil
}

// openDir opens dir (absolute, inside root) as a directory fd, making each
// missing component and replacing any component that is not a directory.
func openDir(root, dir string) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: root, Err: err}
	}
	walked := "/"
	for _, c := range strings.Split(strings.Trim(dir, "/"), "/") {
		if c == "" {
			continue
		}
		walked = path.Join(walked, c)
		next, err := childDir(fd, c)
		unix.Close(fd)
		if err != nil {
			return -1, &os.PathError{Op: "open directory", Path: walked, Err: err}
		}
		fd = next
	}
	return fd, nil
}

// childDir opens the directory name under parent, first making it, or
// removing what stands in its place (a planted symlink or file).
func childDir(parent int, name string) (int, error) {
	var st unix.Stat_t
	err := unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
	case err != nil:
		return -1, err
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		if err := unix.Unlinkat(parent, name, 0); err != nil {
			return -1, fmt.Errorf("replace non-directory: %w", err)
		}
	}
	if err := unix.Mkdirat(parent, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, err
	}
	// Even if something swapped the directory for a symlink since, this
	// open refuses to follow it.
	return unix.Openat2(parent, name, &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: uint64(noFollow),
	})
}

func tempName(base string) (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "." + base + ".tmp-" + hex.EncodeToString(b[:]), nil
}

// ReadFile reads at most max bytes of name inside root without following
// any symlink (the guest wrote it; a link must not make loftd read a host
// file). A missing file is an error satisfying errors.Is(err, fs.ErrNotExist).
func ReadFile(root, name string, max int64) ([]byte, error) {
	f, err := Open(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// Open opens name inside root for reading without following any symlink
// on the way or at the end: a link anywhere in name is an error (ELOOP),
// never a way out of root. With root "/" it opens a host path that must
// contain no link at all, which is how loftd reads a file the guest could
// have swapped for one.
func Open(root, name string) (*os.File, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rfd)
	rel := strings.TrimPrefix(path.Clean("/"+name), "/")
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(rfd, rel, &unix.OpenHow{
		Flags: unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: uint64(noFollow),
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path.Join(root, name), Err: err}
	}
	return os.NewFile(uintptr(fd), path.Join(root, name)), nil
}

// Remove removes the file name inside root if it is there, never following
// a symlink on the way (a missing parent directory is made).
func Remove(root, name string) error {
	dir, base, err := split(name)
	if err != nil {
		return err
	}
	dfd, err := openDir(root, dir)
	if err != nil {
		return fmt.Errorf("remove %s in %s: %w", name, root, err)
	}
	defer unix.Close(dfd)
	if err := unix.Unlinkat(dfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s in %s: %w", name, root, &os.PathError{Op: "unlink", Path: name, Err: err})
	}
	return nil
}

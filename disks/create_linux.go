package disks

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// tmpInfix marks a disk under construction: ".nix.raw.tmp-123456" beside
// nix.raw. The name is only ever renamed into place once mkfs has finished.
const tmpInfix = ".tmp-"

// mkfs formats the file at path as btrfs. It is a variable so tests can make
// it fail, or stand in for a crash after it.
var mkfs = mkfsBtrfs

// publish moves a finished disk from tmp to path; replace says whether an
// existing file at path may be replaced. A variable for the crash tests.
var publish = rename

// Create makes a new sparse disk of size bytes at path, formatted as btrfs
// with label. It refuses an existing path (fs.ErrExist), whatever it is. The
// disk is built under a temporary name in the same directory and renamed
// into place only when complete, so path never names half a disk.
//
// Crashes: on an error the temporary file is removed. A process killed
// mid-way leaves its temporary file behind; the next Create, Ensure or Reset
// of the same path removes such leftovers. Each builder holds an exclusive
// flock on its temporary file, so only files whose builder is gone are
// removed, never one that a concurrent Create is still working on.
func Create(path, label string, size int64) error {
	if err := create(path, label, size); err != nil {
		return fmt.Errorf("create disk %s: %w", path, err)
	}
	return nil
}

func create(path, label string, size int64) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%w (refusing to overwrite it)", fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return build(path, label, size, false)
}

// build makes the disk under a temporary name and publishes it at path.
func build(path, label string, size int64, replace bool) (err error) {
	if size < MinSize {
		return fmt.Errorf("size %s is below the %s that btrfs needs", FormatSize(size), FormatSize(MinSize))
	}
	dir, base := filepath.Dir(path), filepath.Base(path)
	removeStale(dir, base)
	f, err := newTemp(dir, base)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = errors.Join(err, rerr)
			}
		}
		f.Close() // also drops the builder's flock
	}()
	if err := f.Truncate(size); err != nil {
		return err
	}
	if err := mkfs(tmp, label); err != nil {
		return err
	}
	// Make the filesystem durable before its name is: after a power cut the
	// real name must not point at a file whose blocks never reached disk.
	if err := f.Sync(); err != nil {
		return err
	}
	if err := publish(tmp, path, replace); err != nil {
		return err
	}
	return syncDir(dir)
}

// newTemp creates and flocks the temporary file. The flock tells
// removeStale in other processes that the file is in use; a removeStale
// probe may win the race between create and flock and unlink the file, in
// which case we start again.
func newTemp(dir, base string) (*os.File, error) {
	for range 3 {
		f, err := os.CreateTemp(dir, "."+base+tmpInfix+"*")
		if err != nil {
			return nil, err
		}
		// Blocking: the only other taker is a removeStale probe, briefly.
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
		}
		if stillNamed(f) {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("temporary disk in %s kept being removed by another process", dir)
}

// stillNamed reports whether f's name still refers to f.
func stillNamed(f *os.File) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(f.Name())
	return err == nil && os.SameFile(a, b)
}

// removeStale removes temporary disks for base left in dir by builders that
// died. It is best effort: a leftover it cannot remove costs disk space, not
// correctness, so failures are ignored.
func removeStale(dir, base string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := "." + base + tmpInfix
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			removeIfUnlocked(filepath.Join(dir, e.Name()))
		}
	}
}

func removeIfUnlocked(name string) {
	f, err := os.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return // a live builder holds it
	}
	if stillNamed(f) {
		os.Remove(name)
	}
}

// rename publishes tmp at path. Without replace it must not overwrite a disk
// that appeared meanwhile (a concurrent Ensure): RENAME_NOREPLACE, or, on
// filesystems without it, link+unlink, which fails on an existing name too.
func rename(tmp, path string, replace bool) error {
	if replace {
		return os.Rename(tmp, path)
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	if err == unix.EINVAL || err == unix.ENOSYS {
		if err := os.Link(tmp, path); err != nil {
			return err
		}
		return os.Remove(tmp)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: path, Err: err}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// mkfsBtrfs formats the regular file at path; mkfs.btrfs needs no loop
// device for that. Non-root users on Debian lack /usr/sbin in PATH, where
// btrfs-progs installs it, so look there too.
func mkfsBtrfs(path, label string) error {
	bin, err := findMkfs()
	if err != nil {
		return err
	}
	out, err := exec.Command(bin, "-q", "-L", label, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.btrfs -q -L %s %s: %w: %s", label, path, err, bytes.TrimSpace(out))
	}
	return nil
}

func findMkfs() (string, error) {
	if p, err := exec.LookPath("mkfs.btrfs"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mkfs.btrfs", "/sbin/mkfs.btrfs"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("mkfs.btrfs not found in PATH, /usr/sbin or /sbin (install btrfs-progs)")
}

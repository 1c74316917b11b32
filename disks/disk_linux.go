package disks

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Sentinels callers branch on (errors.Is). The errors that carry them also
// name the disk and the fix.
var (
	// ErrNotRegular: the path is a symlink, directory, device or other
	// non-regular file. loftd never follows a symlink to a disk.
	ErrNotRegular = errors.New("not a regular file")
	// ErrNotBtrfs: a regular file without a btrfs superblock.
	ErrNotBtrfs = errors.New("not a btrfs image")
	// ErrTooSmall: a valid btrfs disk smaller than asked for. It is checked
	// last, so a caller may treat it as a warning and use the disk.
	ErrTooSmall = errors.New("disk too small")
	// ErrShrink: Grow was asked for a smaller size; disks only grow.
	ErrShrink = errors.New("disks cannot shrink")
	// ErrSameSize: Grow was asked for the size the disk already has.
	ErrSameSize = errors.New("disk already has that size")
)

// btrfsMagic sits in the primary superblock, which starts at 64 KiB; the
// magic is at offset 0x40 inside it.
const (
	btrfsMagic       = "_BHRfS_M"
	btrfsMagicOffset = 0x10040
)

// Validate checks that path is a disk loftd may reuse: a regular file (not a
// symlink, even to a valid disk), with a btrfs superblock, at least minSize
// bytes long. It never modifies the file.
func Validate(path string, minSize int64) error {
	if _, err := validate(path, minSize); err != nil {
		return fmt.Errorf("validate disk %s: %w", path, err)
	}
	return nil
}

// validate returns the disk's size, and an error that still lacks the
// operation and path (callers add them).
func validate(path string, minSize int64) (int64, error) {
	// Lstat first: opening a FIFO would block, and O_NOFOLLOW alone would
	// report a symlink as ELOOP rather than as what it is.
	st, err := os.Lstat(path)
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%w but a %s (refusing to use it; put the disk file itself there or move this away)", ErrNotRegular, kind(st.Mode()))
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fst, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !os.SameFile(st, fst) {
		return 0, fmt.Errorf("%s changed while being checked; retry", path)
	}
	magic := make([]byte, len(btrfsMagic))
	if _, err := f.ReadAt(magic, btrfsMagicOffset); err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read superblock: %w", err)
	}
	if string(magic) != btrfsMagic {
		return 0, fmt.Errorf("%w (refusing to overwrite; move it away, or for the nix disk run loftd reset-nix --force)", ErrNotBtrfs)
	}
	if size := fst.Size(); size < minSize {
		return size, fmt.Errorf("%w: %s, want at least %s (grow it with loftd resize --target %s --size %s)", ErrTooSmall, FormatSize(size), FormatSize(minSize), resizeTarget(path), flagSize(minSize))
	}
	return fst.Size(), nil
}

// resizeTarget is resize's --target for the disk at path: a workspace keeps
// its disks as nix.raw and containers.raw, named after the target, so the
// hint can be run as printed.
func resizeTarget(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".raw")
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// Ensure makes path a usable disk: an existing disk is validated against
// size (ErrTooSmall comes last, after the disk proved to be a regular btrfs
// file, so the caller may decide to carry on), an absent one is created.
// created reports which happened.
func Ensure(path, label string, size int64) (created bool, err error) {
	_, err = validate(path, size)
	if errors.Is(err, fs.ErrNotExist) {
		err = create(path, label, size)
		if err == nil {
			return true, nil
		}
		if errors.Is(err, fs.ErrExist) {
			// Another process made it between our check and our rename:
			// use theirs.
			_, err = validate(path, size)
		}
	}
	if err != nil {
		return false, fmt.Errorf("prepare disk %s: %w", path, err)
	}
	return false, nil
}

// Grow makes the disk's file size bigger; the filesystem inside follows when
// the guest runs GrowFilesystem. It refuses a smaller size (ErrShrink) and
// the current size (ErrSameSize). The caller holds the workspace lock
// exclusively, so no VM has the disk attached.
func Grow(path string, size int64) error {
	cur, err := validate(path, 0)
	if err == nil {
		switch {
		case size < cur:
			err = fmt.Errorf("%w: asked for %s, the disk is %s", ErrShrink, FormatSize(size), FormatSize(cur))
		case size == cur:
			err = fmt.Errorf("%w: asked for %s, the disk is %s already", ErrSameSize, FormatSize(size), FormatSize(cur))
		default:
			err = truncate(path, size)
		}
	}
	if err != nil {
		return fmt.Errorf("grow disk %s: %w", path, err)
	}
	return nil
}

func truncate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Reset discards the disk at path and puts a fresh one there. It only ever
// replaces a regular file: a symlink, directory or anything else is refused
// (ErrNotRegular) and left alone; an absent disk is simply created. The new
// disk is built beside the old one and renamed over it, so a crash leaves
// either the old disk or the new one, never none or half of one. The caller
// holds the workspace lock exclusively.
func Reset(path, label string, size int64) error {
	err := checkReplaceable(path)
	if err == nil {
		err = build(path, label, size, true)
	}
	if err != nil {
		return fmt.Errorf("reset disk %s: %w", path, err)
	}
	return nil
}

func checkReplaceable(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w but a %s (refusing to remove it; move it away yourself)", ErrNotRegular, kind(st.Mode()))
	}
	return nil
}

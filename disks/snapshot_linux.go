package disks

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A snapshot is a copy of a whole disk file, made without reading the
// filesystem in it: the guest wrote that filesystem, and the host never
// mounts it. Where the file's filesystem shares extents (btrfs, xfs) the
// copy is a reflink (FICLONE): instant, and it costs space only as the disk
// and the copy drift apart. Elsewhere it is a sparse copy of the data
// extents (SEEK_DATA/SEEK_HOLE), which costs the disk's used size.

// SnapshotMethod is how a snapshot was copied.
type SnapshotMethod string

const (
	Reflink    SnapshotMethod = "reflink"
	SparseCopy SnapshotMethod = "sparse-copy"
)

// ErrNoSnapshot: no snapshot of that name.
var ErrNoSnapshot = errors.New("no such snapshot")

// CheckSnapshotName refuses a name that is not one plain file name: 1-64
// of [A-Za-z0-9._-], starting with a letter or digit. A loop, not a regexp:
// the guest init links this package, and a package-level regexp is compiled
// at every boot (11 ms of its start under TCG, GODEBUG=inittrace=1).
func CheckSnapshotName(name string) error {
	if !plainName(name) {
		return fmt.Errorf("snapshot name %q: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func plainName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// SnapshotInfo is one snapshot in a snapshot directory.
type SnapshotInfo struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"` // the disk's apparent size
	Used    int64     `json:"used"` // blocks allocated to the file (shared extents counted in full)
	// Kind: "file" (a reflink or sparse copy of the disk file) or
	// "in-disk" (a btrfs snapshot inside the disk; Size and Used 0).
	Kind string `json:"kind"`
}

// InDisk is the method of a snapshot kept inside the disk (indisk_linux.go);
// the host records it as an empty NAME.in-disk file, to list it without a VM.
const InDisk SnapshotMethod = "in-disk"

func inDiskMarker(dir, name string) string { return filepath.Join(dir, name+".in-disk") }

// HasSnapshot says how the snapshot name is kept: "file", "in-disk", or
// "" when there is none.
func HasSnapshot(dir, name string) string {
	if _, err := os.Lstat(snapshotPath(dir, name)); err == nil {
		return "file"
	}
	if _, err := os.Lstat(inDiskMarker(dir, name)); err == nil {
		return string(InDisk)
	}
	return ""
}

// MarkInDisk records (or with present false, forgets) an in-disk snapshot.
func MarkInDisk(dir, name string, present bool) error {
	if err := CheckSnapshotName(name); err != nil {
		return err
	}
	if !present {
		if err := os.Remove(inDiskMarker(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(inDiskMarker(dir, name), nil, 0o600)
}

// CanReflink reports whether dir's filesystem clones files (FICLONE).
func CanReflink(dir string) bool {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false
	}
	a, err := newTemp(dir, "reflink-probe")
	if err != nil {
		return false
	}
	defer os.Remove(a.Name())
	defer a.Close()
	if _, err := a.Write([]byte("x")); err != nil {
		return false
	}
	b, err := newTemp(dir, "reflink-probe")
	if err != nil {
		return false
	}
	defer os.Remove(b.Name())
	defer b.Close()
	return unix.IoctlFileClone(int(b.Fd()), int(a.Fd())) == nil
}

func snapshotPath(dir, name string) string { return filepath.Join(dir, name+".raw") }

// SaveSnapshot copies disk to dir/NAME.raw; an existing name is refused.
// The caller holds the workspace lock exclusively, so no VM writes the disk.
func SaveSnapshot(disk, dir, name string) (SnapshotMethod, error) {
	if err := CheckSnapshotName(name); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("save snapshot %s: %w", name, err)
	}
	dst := snapshotPath(dir, name)
	if HasSnapshot(dir, name) != "" {
		return "", fmt.Errorf("save snapshot %s: %s exists (pick another name, or remove it with snapshot rm)", name, dst)
	}
	how, err := copyDisk(disk, dir, name, dst, false)
	if err != nil {
		return "", fmt.Errorf("save snapshot %s of %s: %w", name, disk, err)
	}
	return how, nil
}

// RestoreSnapshot replaces disk with a copy of dir/NAME.raw (the snapshot
// stays, to restore again). The caller holds the workspace lock
// exclusively: a VM using the disk refuses the restore.
func RestoreSnapshot(disk, dir, name string) (SnapshotMethod, error) {
	if err := CheckSnapshotName(name); err != nil {
		return "", err
	}
	src := snapshotPath(dir, name)
	if _, err := os.Lstat(src); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("restore snapshot %s: %w (list them with snapshot list)", name, ErrNoSnapshot)
	}
	if err := Validate(src, 0); err != nil {
		return "", fmt.Errorf("restore snapshot %s: %w", name, err)
	}
	how, err := copyDisk(src, filepath.Dir(disk), filepath.Base(disk), disk, true)
	if err != nil {
		return "", fmt.Errorf("restore snapshot %s to %s: %w", name, disk, err)
	}
	return how, nil
}

// copyDisk copies src to a new temporary file in dir, with src's owner and
// mode, and renames it to dst (over it when replace).
func copyDisk(src, dir, base, dst string, replace bool) (SnapshotMethod, error) {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return "", err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %w", src, ErrNotRegular)
	}
	out, err := newTemp(dir, base)
	if err != nil {
		return "", err
	}
	tmp := out.Name()
	how, err := cloneOrCopy(out, in, fi.Size())
	if err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			// As root for a user's disk: keep it theirs. As the user
			// this is a no-op.
			_ = out.Chown(int(st.Uid), int(st.Gid))
		}
		err = out.Chmod(fi.Mode().Perm())
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rename(tmp, dst, replace)
	}
	if err == nil {
		err = syncDir(filepath.Dir(dst))
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return how, nil
}

// cloneOrCopy reflinks in into out, else copies its data extents.
func cloneOrCopy(out, in *os.File, size int64) (SnapshotMethod, error) {
	err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
	if err == nil {
		return Reflink, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return "", fmt.Errorf("FICLONE: %w", err)
	}
	if err := out.Truncate(size); err != nil {
		return "", err
	}
	return SparseCopy, copyExtents(out, in, size)
}

// copyExtents copies the data extents of in to the same offsets in out,
// which is size bytes of holes already.
func copyExtents(out, in *os.File, size int64) error {
	fd := int(in.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole remains
		}
		if err != nil {
			return fmt.Errorf("seek data: %w", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seek hole: %w", err)
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, data), io.NewSectionReader(in, data, hole-data)); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// ListSnapshots lists dir's snapshots by name.
func ListSnapshots(dir string) ([]SnapshotInfo, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []SnapshotInfo
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".raw")
		kind := "file"
		if !ok {
			name, ok = strings.CutSuffix(e.Name(), ".in-disk")
			kind = string(InDisk)
		}
		if !ok || CheckSnapshotName(name) != nil || !e.Type().IsRegular() {
			continue // a temporary file, or not ours
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		info := SnapshotInfo{Name: name, Created: fi.ModTime(), Kind: kind}
		if kind == "file" {
			info.Size = fi.Size()
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && kind == "file" {
			info.Used = st.Blocks * 512
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemoveSnapshot deletes dir/NAME.raw.
func RemoveSnapshot(dir, name string) error {
	if err := CheckSnapshotName(name); err != nil {
		return err
	}
	err := os.Remove(snapshotPath(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove snapshot %s: %w", name, ErrNoSnapshot)
	}
	return err
}

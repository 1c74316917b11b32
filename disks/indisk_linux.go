package disks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// In-disk snapshots are btrfs snapshots inside a workspace disk, made by
// the guest's kernel in a maintenance VM (the host never mounts the
// guest's filesystem) where the state directory has no reflinks. The disk
// is mounted at its top level (subvolid=5); snapshots are read-only
// subvolumes in InDiskDir. A restore snapshots one again, writable, and
// makes that the filesystem's default subvolume, which every later mount
// without subvol= (the sessions', resize's) then gets; ActiveFile names it.

const (
	// InDiskDir holds the snapshots, at the disk's top level.
	InDiskDir = ".loftd-snapshots"
	// ActiveFile, in InDiskDir, names the subvolume that is the default
	// (absent: the top level).
	ActiveFile = "ACTIVE"
)

// btrfs ioctls golang.org/x/sys does not define.
const (
	btrfsIocSnapCreateV2 = 0x50009417 // _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)
	btrfsIocSnapDestroy  = 0x5000940f // _IOW(0x94, 15, struct btrfs_ioctl_vol_args)
	btrfsIocDefaultSub   = 0x40089413 // _IOW(0x94, 19, __u64)
	btrfsIocInoLookup    = 0xd0009412 // _IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args)
	btrfsSubvolRdonly    = 1 << 1
	btrfsFirstFreeObject = 256
)

// btrfsVolArgsV2 is struct btrfs_ioctl_vol_args_v2 (4096 bytes).
type btrfsVolArgsV2 struct {
	fd      int64
	transid uint64
	flags   uint64
	unused  [4]uint64
	name    [4040]byte
}

// btrfsInoLookupArgs is struct btrfs_ioctl_ino_lookup_args (4096 bytes).
type btrfsInoLookupArgs struct {
	treeid   uint64
	objectid uint64
	name     [4080]byte
}

func ioctl(fd uintptr, req uintptr, arg unsafe.Pointer, name string) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg)); errno != 0 {
		return os.NewSyscallError("ioctl "+name, errno)
	}
	return nil
}

// snapshotSubvol snapshots the subvolume src into dir as name.
func snapshotSubvol(src, dir *os.File, name string, readOnly bool) error {
	var a btrfsVolArgsV2
	a.fd = int64(src.Fd())
	if readOnly {
		a.flags = btrfsSubvolRdonly
	}
	copy(a.name[:], name)
	return ioctl(dir.Fd(), btrfsIocSnapCreateV2, unsafe.Pointer(&a), "BTRFS_IOC_SNAP_CREATE_V2 "+name)
}

// destroySubvol deletes the subvolume name in dir (read-only ones too).
func destroySubvol(dir *os.File, name string) error {
	var a btrfsVolArgs
	copy(a.name[:], name)
	return ioctl(dir.Fd(), btrfsIocSnapDestroy, unsafe.Pointer(&a), "BTRFS_IOC_SNAP_DESTROY "+name)
}

// subvolID is the id of the subvolume whose root f is.
func subvolID(f *os.File) (uint64, error) {
	a := btrfsInoLookupArgs{objectid: btrfsFirstFreeObject}
	if err := ioctl(f.Fd(), btrfsIocInoLookup, unsafe.Pointer(&a), "BTRFS_IOC_INO_LOOKUP"); err != nil {
		return 0, err
	}
	return a.treeid, nil
}

// inDisk is a disk's top level, mounted by the maintenance VM.
type inDisk struct{ top string }

func (d inDisk) dir() string { return filepath.Join(d.top, InDiskDir) }

// active is the subvolume now the default, "" for the top level.
func (d inDisk) active() (string, error) {
	b, err := os.ReadFile(filepath.Join(d.dir(), ActiveFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	name := strings.TrimSpace(string(b))
	if err == nil && (!strings.HasPrefix(name, ".active-") || strings.ContainsAny(name, "/\x00")) {
		err = fmt.Errorf("%s: %q is not an active subvolume", ActiveFile, name)
	}
	return name, err
}

func (d inDisk) open(rel string) (*os.File, error) {
	return os.OpenFile(filepath.Join(d.top, rel), os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
}

// SaveInDisk makes the read-only snapshot name of what the disk's
// sessions see (the default subvolume), its top level mounted at top.
func SaveInDisk(top, name string) error {
	if err := CheckSnapshotName(name); err != nil {
		return err
	}
	d := inDisk{top}
	if err := os.Mkdir(d.dir(), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("save snapshot %s: %w", name, err)
	}
	if _, err := os.Lstat(filepath.Join(d.dir(), name)); err == nil {
		return fmt.Errorf("save snapshot %s: it exists (pick another name, or remove it with snapshot rm)", name)
	}
	act, err := d.active()
	if err != nil {
		return err
	}
	srcPath := "."
	if act != "" {
		srcPath = filepath.Join(InDiskDir, act)
	}
	src, err := d.open(srcPath)
	if err != nil {
		return fmt.Errorf("save snapshot %s: %w", name, err)
	}
	defer src.Close()
	dir, err := d.open(InDiskDir)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := snapshotSubvol(src, dir, name, true); err != nil {
		return fmt.Errorf("save snapshot %s: %w", name, err)
	}
	return nil
}

// RestoreInDisk makes a writable snapshot of name the default subvolume,
// then drops what was the default (the top level's own files, or the
// previous restore's subvolume).
func RestoreInDisk(top, name string) error {
	if err := CheckSnapshotName(name); err != nil {
		return err
	}
	d := inDisk{top}
	old, err := d.active()
	if err != nil {
		return err
	}
	src, err := d.open(filepath.Join(InDiskDir, name))
	if err != nil {
		return fmt.Errorf("restore snapshot %s: %w", name, ErrNoSnapshot)
	}
	defer src.Close()
	dir, err := d.open(InDiskDir)
	if err != nil {
		return err
	}
	defer dir.Close()
	next := ".active-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := snapshotSubvol(src, dir, next, false); err != nil {
		return fmt.Errorf("restore snapshot %s: %w", name, err)
	}
	nf, err := d.open(filepath.Join(InDiskDir, next))
	if err != nil {
		return err
	}
	id, err := subvolID(nf)
	nf.Close()
	if err != nil {
		return fmt.Errorf("restore snapshot %s: %w", name, err)
	}
	topf, err := d.open(".")
	if err != nil {
		return err
	}
	defer topf.Close()
	if err := ioctl(topf.Fd(), btrfsIocDefaultSub, unsafe.Pointer(&id), "BTRFS_IOC_DEFAULT_SUBVOL"); err != nil {
		return fmt.Errorf("restore snapshot %s: %w", name, err)
	}
	tmp := filepath.Join(d.dir(), ActiveFile+".tmp")
	if err := os.WriteFile(tmp, []byte(next+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(d.dir(), ActiveFile)); err != nil {
		return err
	}
	unix.Sync()
	return d.dropOld(dir, old)
}

// dropOld frees what the default was before a restore.
func (d inDisk) dropOld(dir *os.File, old string) error {
	if old != "" {
		if err := destroySubvol(dir, old); err != nil {
			return fmt.Errorf("restored, but the previous data stays on the disk: %w", err)
		}
		return nil
	}
	ents, err := os.ReadDir(d.top)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == InDiskDir {
			continue
		}
		// user_subvol_rm_allowed: a subvolume the containers store made
		// is removed by rmdir once empty.
		if err := os.RemoveAll(filepath.Join(d.top, e.Name())); err != nil {
			return fmt.Errorf("restored, but the previous data stays on the disk: %w", err)
		}
	}
	return nil
}

// RemoveInDisk deletes the snapshot name.
func RemoveInDisk(top, name string) error {
	if err := CheckSnapshotName(name); err != nil {
		return err
	}
	d := inDisk{top}
	dir, err := d.open(InDiskDir)
	if err != nil {
		return fmt.Errorf("remove snapshot %s: %w", name, ErrNoSnapshot)
	}
	defer dir.Close()
	if _, err := os.Lstat(filepath.Join(d.dir(), name)); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", name, ErrNoSnapshot)
	}
	return destroySubvol(dir, name)
}

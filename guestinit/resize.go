package guestinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/loftd/loftd/disks"
	"github.com/loftd/loftd/guestinit/contract"
	"golang.org/x/sys/unix"
)

// Resize mode (LOFTD_MODE=resize) is the maintenance VM of `loftd resize`:
// the host grew one disk file and boots this init alone, with only that
// disk attached, so that the filesystem is grown by the guest's kernel and
// the host never mounts a filesystem the guest wrote.

// resizeLabels maps the contract's disk ids to their btrfs labels.
var resizeLabels = map[string]string{
	contract.NixDiskID:        contract.NixLabel,
	contract.ContainersDiskID: contract.ContainersLabel,
}

// resizeSteps replace planSteps in resize mode: no workspace, no workload.
func (e *enter) resizeSteps() []Step {
	id := e.guest.ResizeDisk
	mnt := "/run/loftd/resize-" + id
	return []Step{
		{Desc: fmt.Sprintf("wire stdio %s %s %s", contract.PortStdin, contract.PortStdout, contract.PortStderr), Do: e.wireStdio},
		{Desc: "btrfs filesystem resize max " + mnt + " (disk " + id + ")", Do: func() error {
			return growDisk(e.sys.SysRoot, resizeLabels[id], mnt)
		}},
		{Desc: "report status on " + contract.PortStatus, Do: e.report},
	}
}

// growDisk finds the disk labelled label, mounts it on mnt, grows its
// filesystem to the device and unmounts it. Growing again is a no-op, so a
// maintenance VM that failed half-way can simply run again.
func growDisk(sysRoot, label, mnt string) error {
	dev, err := findDiskByLabel(sysRoot, label)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return err
	}
	// The disk is the guest's own data: nothing on it runs here.
	if err := unix.Mount(dev, mnt, "btrfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_NOATIME, ""); err != nil {
		return &os.PathError{Op: "mount btrfs " + dev, Path: mnt, Err: err}
	}
	gerr := disks.GrowFilesystem(mnt)
	uerr := unix.Unmount(mnt, 0)
	if uerr != nil {
		uerr = &os.PathError{Op: "unmount", Path: mnt, Err: uerr}
	}
	if err := errors.Join(gerr, uerr); err != nil {
		return err
	}
	unix.Sync()
	return nil
}

// findDiskByLabel returns the /dev node of the virtio disk whose btrfs
// superblock carries label. libkrun's block_id is no serial the guest can
// see, so the label is the one stable name. (Sessions find their disks in
// guestinit/disks.go the same way; this is resize's own small copy until
// the two meet.)
func findDiskByLabel(sysRoot, label string) (string, error) {
	if label == "" {
		return "", fmt.Errorf("find disk: no label")
	}
	names, err := filepath.Glob(filepath.Join(sysRoot, "sys/block/vd*"))
	if err != nil {
		return "", err
	}
	var seen []string
	for _, n := range names {
		dev := filepath.Join(sysRoot, "dev", filepath.Base(n))
		got, err := diskLabel(dev)
		if err != nil {
			seen = append(seen, fmt.Sprintf("%s (%v)", dev, err))
			continue
		}
		if got == label {
			return dev, nil
		}
		seen = append(seen, fmt.Sprintf("%s (label %q)", dev, got))
	}
	if len(seen) == 0 {
		return "", fmt.Errorf("find disk labelled %s: no virtio disk in %s", label, filepath.Join(sysRoot, "sys/block"))
	}
	return "", fmt.Errorf("find disk labelled %s: none of %s", label, strings.Join(seen, ", "))
}

func diskLabel(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sb, err := disks.ReadSuper(f)
	if err != nil {
		return "", err
	}
	return sb.Label, nil
}

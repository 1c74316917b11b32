package guestinit

import (
	"errors"
	"fmt"
	"os"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/disks"
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
	if label == "" {
		return fmt.Errorf("find disk: no label")
	}
	found, _, err := findDisks(sysRoot, []string{label}, byLabelOnly)
	if err != nil {
		return err
	}
	dev := found[label]
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return err
	}
	// The disk is the guest's own data: nothing on it runs here.
	op := mountOp{FSType: "btrfs", Source: dev, Target: mnt, Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME}
	if err := op.do(unix.Mount); err != nil {
		return err
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

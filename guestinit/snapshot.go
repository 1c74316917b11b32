package guestinit

import (
	"errors"
	"fmt"
	"os"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/disks"
	"golang.org/x/sys/unix"
)

// Snapshot mode (LOFTD_MODE=snapshot) is the maintenance VM of `loftd
// snapshot` where the state directory has no reflinks: the snapshot is a
// btrfs snapshot inside the disk, made by the guest's kernel, so the host
// never mounts a filesystem the guest wrote.

// snapshotSteps replace planSteps in snapshot mode.
func (e *enter) snapshotSteps() []Step {
	g := e.guest
	mnt := "/run/loftd/snapshot-" + g.ResizeDisk
	return []Step{
		{Desc: fmt.Sprintf("wire stdio %s %s %s", contract.PortStdin, contract.PortStdout, contract.PortStderr), Do: e.wireStdio},
		{Desc: fmt.Sprintf("btrfs snapshot %s %s on %s (disk %s, subvolid=5)", g.SnapshotOp, g.SnapshotName, mnt, g.ResizeDisk), Do: func() error {
			return snapshotDisk(e.sys.SysRoot, resizeLabels[g.ResizeDisk], mnt, g.SnapshotOp, g.SnapshotName)
		}},
		{Desc: "report status on " + contract.PortStatus, Do: e.report},
	}
}

// snapshotDisk mounts the disk labelled label at its top level (the
// snapshots live there, whatever subvolume is the default) and does op.
func snapshotDisk(sysRoot, label, mnt, op, name string) error {
	if label == "" {
		return fmt.Errorf("find disk: no label")
	}
	found, _, err := findDisks(sysRoot, []string{label}, byLabelOnly)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return err
	}
	// user_subvol_rm_allowed: a restore removes the containers store's
	// subvolumes of the data it replaces.
	m := mountOp{FSType: "btrfs", Source: found[label], Target: mnt, Data: "subvolid=5,user_subvol_rm_allowed",
		Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME}
	if err := m.do(unix.Mount); err != nil {
		return err
	}
	var oerr error
	switch op {
	case "save":
		oerr = disks.SaveInDisk(mnt, name)
	case "restore":
		oerr = disks.RestoreInDisk(mnt, name)
	case "rm":
		oerr = disks.RemoveInDisk(mnt, name)
	default:
		oerr = fmt.Errorf("snapshot %q: want save, restore or rm", op)
	}
	unix.Sync()
	uerr := unix.Unmount(mnt, 0)
	if uerr != nil {
		uerr = &os.PathError{Op: "unmount", Path: mnt, Err: uerr}
	}
	return errors.Join(oerr, uerr)
}

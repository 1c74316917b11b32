package guestinit

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Filesystem magics (statfs f_type) that tell an early mount is already in
// place: libkrun's init mounts these before it execs the guest init, and a
// kernel with DEVTMPFS_MOUNT mounts /dev itself. devtmpfs reports tmpfs.
const (
	magicProc    = unix.PROC_SUPER_MAGIC
	magicSysfs   = unix.SYSFS_MAGIC
	magicTmpfs   = unix.TMPFS_MAGIC
	magicDevpts  = unix.DEVPTS_SUPER_MAGIC
	magicCgroup2 = unix.CGROUP2_SUPER_MAGIC
)

// mountStep mounts source (of type fstype) on target, creating target. When
// skipMagic is not -1 and target already has that filesystem, it does
// nothing; EBUSY (the same filesystem mounted there already) is tolerated.
func (e *enter) mountStep(fstype, source, target, data string, skipMagic int64) Step {
	desc := "mount -t " + fstype
	if data != "" {
		desc += " -o " + data
	}
	desc += " " + source + " " + target
	return Step{Desc: desc, Do: func() error {
		if skipMagic != -1 {
			if m, err := e.sys.FSMagic(target); err == nil && m == skipMagic {
				return nil
			}
		}
		if err := e.sys.MkdirAll(target, 0o755); err != nil {
			return err
		}
		flags := uintptr(unix.MS_NOSUID)
		// devpts holds the pty slaves: with nodev they could not be opened.
		if fstype != "devtmpfs" && fstype != "virtiofs" && fstype != "devpts" {
			flags |= unix.MS_NODEV
		}
		err := e.sys.Mount(source, target, fstype, flags, data)
		if errors.Is(err, unix.EBUSY) {
			return nil
		}
		if err != nil {
			return &os.PathError{Op: "mount " + fstype, Path: target, Err: err}
		}
		return nil
	}}
}

// devPath returns the guest path of a /dev or /sys entry under SysRoot.
func (e *enter) devPath(p string) string { return filepath.Join(e.sys.SysRoot, p) }

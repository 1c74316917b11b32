package guestinit

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

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

// mountOp is one mount(2) call. A step's description is its String and
// the step makes the call from the same fields (u-root's libinit.MountOp),
// so the step list cannot say less than the init does: it once left out
// MS_NOSUID|MS_NODEV.
type mountOp struct {
	FSType, Source, Target string
	Flags                  uintptr
	Data                   string // the filesystem's own options
	// Lower, Upper and Work are an overlay's layers (guest paths), given
	// to it as lowerdir=,upperdir=,workdir= before Data.
	Lower, Upper, Work string
}

// mountFlagNames are the flags a step may set, as mount(8) spells them,
// in the order the descriptions list them.
var mountFlagNames = []struct {
	flag uintptr
	name string
}{
	{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"},
	{unix.MS_NOEXEC, "noexec"}, {unix.MS_NOATIME, "noatime"},
}

// data is what mount(2) gets as its data argument.
func (m mountOp) data() string {
	var opts []string
	if m.Lower != "" {
		opts = append(opts, "lowerdir="+m.Lower, "upperdir="+m.Upper, "workdir="+m.Work)
	}
	if m.Data != "" {
		opts = append(opts, m.Data)
	}
	return strings.Join(opts, ",")
}

// String is the call as a mount(8) command, the flags by name (a flag
// without a name in hex, so nothing is left out).
func (m mountOp) String() string {
	var opts []string
	rest := m.Flags
	for _, f := range mountFlagNames {
		if rest&f.flag != 0 {
			opts = append(opts, f.name)
			rest &^= f.flag
		}
	}
	if rest != 0 {
		opts = append(opts, fmt.Sprintf("%#x", rest))
	}
	if d := m.data(); d != "" {
		opts = append(opts, d)
	}
	cmd := "mount -t " + m.FSType
	if len(opts) > 0 {
		cmd += " -o " + strings.Join(opts, ",")
	}
	return cmd + " " + m.Source + " " + m.Target
}

// under is the same mount with its guest paths under root (the system
// root: "/" in the guest, a directory in tests).
func (m mountOp) under(root string) mountOp {
	for _, p := range []*string{&m.Target, &m.Lower, &m.Upper, &m.Work} {
		if *p != "" {
			*p = filepath.Join(root, *p)
		}
	}
	return m
}

// do makes the call with mount (System.Mount, or unix.Mount); its error
// names the whole call.
func (m mountOp) do(mount func(source, target, fstype string, flags uintptr, data string) error) error {
	if err := mount(m.Source, m.Target, m.FSType, m.Flags, m.data()); err != nil {
		return fmt.Errorf("%s: %w", m, err)
	}
	return nil
}

// kernelMount is an early mount of a kernel filesystem, a tmpfs or the
// workspace share: nosuid, and nodev except where device nodes must open
// (devtmpfs; devpts, which holds the pty slaves) and on the workspace.
func kernelMount(fstype, source, target, data string) mountOp {
	flags := uintptr(unix.MS_NOSUID)
	if fstype != "devtmpfs" && fstype != "virtiofs" && fstype != "devpts" {
		flags |= unix.MS_NODEV
	}
	return mountOp{FSType: fstype, Source: source, Target: target, Flags: flags, Data: data}
}

// mountStep mounts source (of type fstype) on target, creating target
// (kernelMount). When skipMagic is not -1 and target already has that
// filesystem, it does nothing; EBUSY (the same filesystem mounted there
// already) is tolerated.
func (e *enter) mountStep(fstype, source, target, data string, skipMagic int64) Step {
	op := kernelMount(fstype, source, target, data)
	return Step{Desc: op.String(), Do: func() error {
		if skipMagic != -1 {
			if m, err := e.sys.FSMagic(target); err == nil && m == skipMagic {
				return nil
			}
		}
		if err := e.sys.MkdirAll(target, 0o755); err != nil {
			return err
		}
		if err := op.do(e.sys.Mount); err != nil && !errors.Is(err, unix.EBUSY) {
			return err
		}
		return nil
	}}
}

// devPath returns the guest path of a /dev or /sys entry under SysRoot.
func (e *enter) devPath(p string) string { return filepath.Join(e.sys.SysRoot, p) }

package virtiofs

import (
	"fmt"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// setIDBits are the mode bits no file served through a share may get:
// setuid and setgid. As root with a root-owned workspace the guest user
// writes as host root (IDMaps), so a setuid file would be a setuid-root
// one; everywhere else it would still be the owner's setuid file, made by
// the guest. The filter holds whatever the id map is.
const setIDBits = unix.S_ISUID | unix.S_ISGID

// DropCaps is virtiofsd's modcaps value for a share (both flavors): no
// CAP_SETFCAP, so no file capability can be written through it (a
// capability whose root id the guest names as an id mapped to host root
// would be effective on the host); no CAP_MKNOD (Policy refuses device
// nodes too); no CAP_FSETID, which only keeps setuid and setgid bits
// where the kernel would clear them, bits Policy never lets a share have.
// What sharing needs stays: CHOWN, DAC_OVERRIDE, FOWNER, SETUID and
// SETGID (virtiofsd acts as each guest user).
const DropCaps = "-setfcap:-mknod:-fsetid"

// createFlags are the open flags that make open's mode argument count.
const createFlags = unix.O_CREAT | unix.O_TMPFILE

// errnoAction returns errno from the refused call.
func errnoAction(errno unix.Errno) seccomp.Action {
	return seccomp.Action(uint32(seccomp.ActionErrno) | uint32(errno))
}

// modeArg is the position of the mode argument of each call that sets
// one on a file (x86_64 and arm64 share the C prototypes).
var modeArg = map[string]uint32{
	"chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2,
	"creat": 1, "mkdir": 1, "mkdirat": 2,
	"mknod": 1, "mknodat": 2,
}

// openArgs are open's and openat's flags and mode positions.
var openArgs = map[string][2]uint32{"open": {1, 2}, "openat": {2, 3}}

// Policy is the seccomp filter every share's virtiofsd runs under (not the
// task root's: the image's own setuid files live there). It refuses, with
// EPERM:
//   - setting mode bits 06000 (chmod, fchmod, fchmodat, fchmodat2) and
//     creating a file or directory with them (creat, mkdir, mkdirat, mknod,
//     mknodat, and open and openat with O_CREAT or O_TMPFILE);
//   - mknod of a character or block device (S_IFCHR and S_IFBLK share the
//     bit 020000; S_IFLNK has it too, and mknod refuses that anyway).
//
// openat2 passes its mode in a struct a filter cannot read, and io_uring
// would run calls a filter never sees: both fail with ENOSYS, so the Rust
// virtiofsd (which probes openat2 at start) uses openat.
func Policy() (seccomp.Policy, error) {
	native, err := arch.GetInfo("")
	if err != nil {
		return seccomp.Policy{}, err
	}
	// arm64 has only the *at calls: leave out the names it lacks.
	has := func(name string) bool { _, ok := native.SyscallNames[name]; return ok }
	var refuse []seccomp.NameWithConditions
	for name, arg := range modeArg {
		if !has(name) {
			continue
		}
		refuse = append(refuse, seccomp.NameWithConditions{Name: name, Conditions: []seccomp.Condition{
			{Argument: arg, Operation: seccomp.BitsSet, Value: setIDBits},
		}})
	}
	for _, name := range []string{"mknod", "mknodat"} {
		if !has(name) {
			continue
		}
		refuse = append(refuse, seccomp.NameWithConditions{Name: name, Conditions: []seccomp.Condition{
			{Argument: modeArg[name], Operation: seccomp.BitsSet, Value: unix.S_IFCHR},
		}})
	}
	for name, a := range openArgs {
		if !has(name) {
			continue
		}
		refuse = append(refuse, seccomp.NameWithConditions{Name: name, Conditions: []seccomp.Condition{
			{Argument: a[0], Operation: seccomp.BitsSet, Value: createFlags},
			{Argument: a[1], Operation: seccomp.BitsSet, Value: setIDBits},
		}})
	}
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{Action: errnoAction(unix.EPERM), NamesWithCondtions: refuse},
			{Action: errnoAction(unix.ENOSYS), Names: []string{"openat2", "io_uring_setup", "io_uring_enter", "io_uring_register"}},
		},
	}, nil
}

// InstallFilter sets no_new_privs and loads Policy on every thread of this
// process (TSYNC), so whichever thread then execs carries it. Nothing can
// remove it, in this process or the programs it execs.
func InstallFilter() error {
	p, err := Policy()
	if err != nil {
		return fmt.Errorf("virtiofsd seccomp filter: %w", err)
	}
	f := seccomp.Filter{NoNewPrivs: true, Flag: seccomp.FilterFlagTSync, Policy: p}
	if err := seccomp.LoadFilter(f); err != nil {
		return fmt.Errorf("virtiofsd seccomp filter: %w", err)
	}
	return nil
}

// rootDenied are the calls no virtiofsd needs: kernel modules, kexec,
// BPF, perf, keyrings, ptrace, swap, reboot, clock changes, accounting.
// virtiofsd's own sandbox (mounts, pivot_root, namespaces) and serving
// files (setuid files included) stay allowed.
var rootDenied = []string{
	"acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "delete_module", "finit_module",
	"init_module", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
	"perf_event_open", "process_vm_readv", "process_vm_writev", "ptrace", "quotactl", "reboot",
	"request_key", "settimeofday", "swapoff", "swapon", "syslog", "userfaultfd", "uselib",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
}

// RootPolicy is the filter of the task root's virtiofsd: a deny-list
// (EPERM), not the share guard, which would refuse the image's setuid
// files.
func RootPolicy() (seccomp.Policy, error) {
	native, err := arch.GetInfo("")
	if err != nil {
		return seccomp.Policy{}, err
	}
	var names []string
	for _, n := range rootDenied {
		if _, ok := native.SyscallNames[n]; ok {
			names = append(names, n)
		}
	}
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls:      []seccomp.SyscallGroup{{Action: errnoAction(unix.EPERM), Names: names}},
	}, nil
}

// InstallRootFilter is InstallFilter with RootPolicy.
func InstallRootFilter() error {
	p, err := RootPolicy()
	if err != nil {
		return fmt.Errorf("virtiofsd seccomp filter: %w", err)
	}
	f := seccomp.Filter{NoNewPrivs: true, Flag: seccomp.FilterFlagTSync, Policy: p}
	if err := seccomp.LoadFilter(f); err != nil {
		return fmt.Errorf("virtiofsd seccomp filter: %w", err)
	}
	return nil
}

package helper

import (
	"fmt"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// netstackRefused are the calls the netstack never makes once it serves:
// running programs, tracing or reading other processes, namespaces and
// mounts, ids and capabilities, kernel modules, keys, BPF, io_uring (whose
// calls a filter never sees), and the host's clock and power. They fail
// with EPERM, so a flaw in the stack (which parses every frame the guest
// sends) cannot reach them.
var netstackRefused = []string{
	"execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev",
	"mount", "umount2", "pivot_root", "chroot", "setns", "unshare",
	"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
	"open_by_handle_at", "name_to_handle_at",
	"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid", "capset",
	"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
	"keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"reboot", "swapon", "swapoff", "syslog", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
}

// confineNetstack loads the filter on every thread of the netstack
// (TSYNC), after it dropped root: nothing can remove it.
func confineNetstack() error {
	native, err := arch.GetInfo("")
	if err != nil {
		return fmt.Errorf("netstack seccomp filter: %w", err)
	}
	var names []string
	for _, n := range netstackRefused {
		if _, ok := native.SyscallNames[n]; ok { // arm64 lacks some (no bare mount-era calls)
			names = append(names, n)
		}
	}
	f := seccomp.Filter{NoNewPrivs: true, Flag: seccomp.FilterFlagTSync, Policy: seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.Action(uint32(seccomp.ActionErrno) | uint32(unix.EPERM)), Names: names},
		},
	}}
	if err := seccomp.LoadFilter(f); err != nil {
		return fmt.Errorf("netstack seccomp filter: %w", err)
	}
	return nil
}

package confine

import "slices"

// Group is a named part of a seccomp allow-list. The lists are data so a
// backend that needs a call adds it to a group (or a new group) here; an
// audit run (`--vmm-sandbox=audit`, then `loftd internal seccomp-audit`)
// prints the calls a run made outside the list, in this form.
type Group struct {
	Name  string
	Calls []string
}

// GoRuntime is what any Go program calls on its own: scheduler, memory,
// signals, timers, the netpoller.
var GoRuntime = Group{"go-runtime", []string{
	"arch_prctl", "brk", "clock_gettime", "clock_getres", "clock_nanosleep", "clone", "close", "close_range",
	"epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd2",
	"exit", "exit_group", "fcntl", "futex", "getegid", "geteuid", "getgid", "getpid", "getppid",
	"getrandom", "getrlimit", "gettid", "gettimeofday", "getuid", "madvise", "membarrier",
	"mincore", "mmap", "mprotect", "mremap", "munmap", "nanosleep", "pipe2", "poll", "ppoll",
	"prlimit64", "pselect6", "read", "readv", "restart_syscall", "rseq", "rt_sigaction",
	"rt_sigprocmask", "rt_sigreturn", "sched_getaffinity", "sched_yield", "select",
	"set_robust_list", "set_tid_address", "sigaltstack", "tgkill", "timer_create",
	"timer_delete", "timer_settime", "uname", "write", "writev",
}}

// FileIO is reading and writing files the process may reach (Landlock
// decides which): logs, the task directory, disks.
var FileIO = Group{"file-io", []string{
	"access", "copy_file_range", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fallocate",
	"fdatasync", "fstat", "fstatfs", "fsync", "ftruncate", "getcwd", "getdents64",
	"ioctl", "lseek", "newfstatat", "open", "openat", "pread64", "preadv", "preadv2",
	"pwrite64", "pwritev", "pwritev2", "readlink", "readlinkat", "rename", "renameat",
	"renameat2", "sendfile", "splice", "stat", "lstat", "statfs", "statx", "tee", "unlink", "unlinkat",
}}

// Children is supervising processes started before confinement: waiting
// for them and stopping them (QEMU, virtiofsd, passt under the QEMU
// helper). No execve: a confined process starts no program.
var Children = Group{"children", []string{
	"kill", "pidfd_open", "pidfd_send_signal", "wait4", "waitid",
}}

// Sockets is serving sockets opened before confinement (the virtio-serial
// ports, a control socket listening before boot): accept and move bytes,
// never socket() or connect().
var Sockets = Group{"sockets", []string{
	"accept", "accept4", "getpeername", "getsockname", "getsockopt", "recvfrom", "recvmmsg",
	"recvmsg", "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown",
}}

// KrunVMM is what libkrun's VMM adds once krun_start_enter runs in the
// helper: KVM (ioctl is in FileIO), its event loop, and its in-process
// virtiofs server, which creates, links and renames files in the shares
// as the guest user (setfsuid/setfsgid around each call).
var KrunVMM = Group{"krun-vmm", []string{
	"copy_file_range", "fchmod", "fchmodat", "fchown", "fchownat", "fgetxattr", "flistxattr",
	"flock", "fremovexattr", "fsetxattr", "getxattr", "lgetxattr", "linkat", "listxattr",
	"llistxattr", "lremovexattr", "lsetxattr", "mkdirat", "mknodat", "name_to_handle_at",
	"open_by_handle_at", "prctl", "removexattr", "setfsgid", "setfsuid", "setxattr",
	"symlinkat", "timerfd_create", "timerfd_gettime", "timerfd_settime", "umask",
	"utimensat", "futimesat", "sched_setaffinity", "memfd_create", "mlock", "munlock",
	"io_getevents", "io_setup", "io_submit", "io_destroy", "sysinfo",
}}

// KrunNet is libkrun's TSI network: the guest's sockets are the VMM's.
var KrunNet = Group{"krun-tsi", []string{
	"bind", "connect", "listen", "socket", "socketpair",
}}

// AllowList merges groups into one sorted list without duplicates.
func AllowList(groups ...Group) []string {
	var out []string
	for _, g := range groups {
		out = append(out, g.Calls...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

package qemu

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/containers/storage/pkg/reexec"
	"github.com/loftd/loftd/helper/virtiofs"
	"github.com/loftd/loftd/internal/confine"
	"golang.org/x/sys/unix"
)

// QEMU's confinement (docs/architecture.md, "Confinement"):
//   - its own seccomp filter, -sandbox (sandboxArgs);
//   - Landlock, applied by `loftd-qemu-wrapper` (this binary re-executed)
//     before it execs QEMU: QEMU reads its binary, libraries and firmware,
//     the kernel, and /dev/kvm; every other file it uses is an inherited fd;
//   - as root, an unprivileged uid (VMMUID): every file QEMU uses is opened
//     here, and disks and the console log reach it as fd sets.

// WrapperName is the QEMU wrapper's argv[0] (dispatched by reexec.Init in
// loftd's main, and in the TestMain of a package that boots QEMU).
const WrapperName = "loftd-qemu-wrapper"

// VMMUID is the uid and gid QEMU runs as when loftd runs as root: one id
// past loftd's default subordinate range (virtiofs.DefaultRange, 65536 ids
// from 0x70000000), so no host user and no guest id through a share owns
// a file as it.
const VMMUID = 0x70010000

func init() { reexec.Register(WrapperName, wrapperMain) }

// sandboxArgs is QEMU's own seccomp filter: no obsolete calls, no setuid,
// no fork or exec, no scheduler or resource changes.
func sandboxArgs(m confine.Mode) []string {
	if m == confine.Off || m == "" {
		return nil
	}
	return []string{"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"}
}

// Confinement describes the confinement of QEMU and virtiofsd in mode m,
// for the task's record and doctor.
func Confinement(m confine.Mode) map[string]string {
	root := confine.HostRoot()
	share := "own sandbox (chroot), modcaps " + virtiofs.DropCaps + ", no_new_privs, seccomp guard (no setuid/setgid bits, no device nodes)"
	if root {
		share += ", user namespace (guest ids are subordinate ids)"
	}
	out := map[string]string{"qemu": "none", "virtiofsd root": "own sandbox (chroot)", "virtiofsd share": share}
	if m == confine.Off {
		return out
	}
	out["virtiofsd root"] += ", no_new_privs, seccomp deny-list"
	if root {
		out["virtiofsd root"] += ", uid 0 (it serves the image's ownership)"
	}
	q := "-sandbox (seccomp), no_new_privs"
	if m == confine.Enforce {
		q += ", landlock"
		if root {
			q += fmt.Sprintf(", uid %d", VMMUID)
		}
	}
	out["qemu"] = q
	return out
}

// qemuPolicy is the Landlock part of QEMU's confinement: what QEMU opens
// by path. Its seccomp filter is its own (-sandbox).
func (c Config) qemuPolicy() confine.Policy {
	p := confine.Policy{Name: "qemu", LogAfterExec: true, Paths: []confine.PathRule{
		{Path: c.QEMU, Access: confine.ReadExec},
		{Path: c.Kernel, Access: confine.Read},
		// The dynamic loader, libraries, firmware (qboot) and keymaps.
		{Path: "/etc/ld.so.cache", Access: confine.Read, Optional: true},
		{Path: "/lib", Access: confine.Read, Optional: true},
		{Path: "/lib64", Access: confine.Read, Optional: true},
		{Path: "/usr/lib", Access: confine.Read, Optional: true},
		{Path: "/usr/lib64", Access: confine.Read, Optional: true},
		{Path: "/usr/local/lib", Access: confine.Read, Optional: true},
		{Path: "/usr/share/qemu", Access: confine.Read, Optional: true},
		{Path: "/usr/share/seabios", Access: confine.Read, Optional: true},
		{Path: "/usr/local/share/qemu", Access: confine.Read, Optional: true},
		{Path: "/dev/null", Access: confine.ReadWrite, Optional: true},
		{Path: "/dev/urandom", Access: confine.Read, Optional: true},
	}}
	if c.Accel == "kvm" {
		p.Paths = append(p.Paths, confine.PathRule{Path: "/dev/kvm", Access: confine.ReadWrite})
	}
	return p
}

// wrapperPlan is what the wrapper reads from its policy fd.
type wrapperPlan struct {
	Policy confine.Policy `json:"policy"`
	// Drop, when set, is who QEMU runs as (loftd runs as root).
	Drop *ids `json:"drop,omitempty"`
}

type ids struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
}

// qemuCommand is QEMU with files as its fds 3…, started directly (mode
// off) or through the wrapper, which applies qemuPolicy and execs QEMU
// (opened here, passed as the next fd, with the policy's JSON after it).
// As root, the wrapper starts as VMMUID with no supplementary group but
// /dev/kvm's (under KVM). done closes the fds the wrapper got.
func (r *runner) qemuCommand(files []*os.File) (cmd *exec.Cmd, done func(), err error) {
	args := Args(r.cfg)
	if r.cfg.Sandbox != confine.Enforce {
		// Audit: QEMU's -sandbox has no log-only mode for its
		// allow-list; it stays on, and Landlock (no log-only mode
		// either) and the uid change are left out.
		cmd = exec.Command(r.cfg.QEMU, args...)
		cmd.ExtraFiles = files
		return cmd, func() {}, nil
	}
	fd, err := unix.Open(r.cfg.QEMU, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open qemu", Path: r.cfg.QEMU, Err: err}
	}
	exe := os.NewFile(uintptr(fd), r.cfg.QEMU)
	wp := wrapperPlan{Policy: r.cfg.qemuPolicy()}
	if confine.HostRoot() {
		wp.Drop = &ids{UID: VMMUID, GID: VMMUID, Groups: []uint32{}}
		if r.cfg.Accel == "kvm" {
			var st unix.Stat_t
			if unix.Stat("/dev/kvm", &st) == nil {
				wp.Drop.Groups = []uint32{st.Gid}
			}
		}
	}
	pol, err := json.Marshal(wp)
	if err != nil {
		exe.Close()
		return nil, nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		exe.Close()
		return nil, nil, err
	}
	// The policy is small: it fits the pipe's buffer.
	_, werr := pw.Write(pol)
	pw.Close()
	if werr != nil {
		exe.Close()
		pr.Close()
		return nil, nil, fmt.Errorf("qemu wrapper policy: %w", werr)
	}
	execFD := 3 + len(files)
	cmd = exec.Command("/proc/self/exe", append([]string{fmt.Sprintf("--exec-fd=%d", execFD), fmt.Sprintf("--policy-fd=%d", execFD+1), r.cfg.QEMU}, args...)...)
	cmd.Args[0] = WrapperName
	cmd.ExtraFiles = append(append([]*os.File{}, files...), exe, pr)
	return cmd, func() { exe.Close(); pr.Close() }, nil
}

// wrapperMain is `loftd-qemu-wrapper --exec-fd=N --policy-fd=M ARGV...`:
// it reads the Landlock policy from fd M, applies it with no_new_privs,
// and execs the QEMU it inherited as fd N with ARGV. It never returns.
func wrapperMain() {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, WrapperName+": "+format+"\n", args...)
		os.Exit(1)
	}
	var execFD, polFD int
	if len(os.Args) < 4 {
		fail("want --exec-fd=N --policy-fd=M ARGV... (loftd starts this itself)")
	}
	if _, err := fmt.Sscanf(os.Args[1], "--exec-fd=%d", &execFD); err != nil || execFD < 3 {
		fail("bad %q: want --exec-fd=N, N >= 3", os.Args[1])
	}
	if _, err := fmt.Sscanf(os.Args[2], "--policy-fd=%d", &polFD); err != nil || polFD < 3 {
		fail("bad %q: want --policy-fd=N, N >= 3", os.Args[2])
	}
	runtime.LockOSThread()
	// The helper started this process with a death signal; changing the
	// uid below clears it, so it is asked for again before the exec (by
	// the thread that execs: the only one QEMU keeps).
	parent := os.Getppid()
	pf := os.NewFile(uintptr(polFD), "policy")
	var wp wrapperPlan
	if err := json.NewDecoder(pf).Decode(&wp); err != nil {
		fail("read policy: %v", err)
	}
	pf.Close()
	unix.CloseOnExec(execFD)
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fail("no_new_privs: %v", err)
	}
	// Landlock first, still root: its rules open their paths, which
	// VMMUID may not be able to search.
	if err := confine.RestrictPaths(wp.Policy); err != nil {
		fail("%v", err)
	}
	if wp.Drop != nil {
		if err := dropIDs(*wp.Drop); err != nil {
			fail("%v", err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		fail("prctl(PR_SET_PDEATHSIG): %v", err)
	}
	if os.Getppid() != parent {
		fail("the helper (pid %d) is gone", parent)
	}
	err := syscall.Exec(fmt.Sprintf("/proc/self/fd/%d", execFD), os.Args[3:], os.Environ())
	fail("exec %s (fd %d): %v", os.Args[3], execFD, err)
}

// dropIDs makes every thread of the wrapper id's: supplementary groups,
// then gid, then uid (after the uid no other change is allowed), and
// checks that root cannot be had back. Go's syscall package changes the
// ids of all threads.
func dropIDs(id ids) error {
	groups := make([]int, len(id.Groups))
	for i, g := range id.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("drop to uid %d: setgroups: %w", id.UID, err)
	}
	if err := syscall.Setresgid(int(id.GID), int(id.GID), int(id.GID)); err != nil {
		return fmt.Errorf("drop to uid %d: setresgid: %w", id.UID, err)
	}
	if err := syscall.Setresuid(int(id.UID), int(id.UID), int(id.UID)); err != nil {
		return fmt.Errorf("drop to uid %d: setresuid: %w", id.UID, err)
	}
	if err := syscall.Setresuid(0, 0, 0); err == nil {
		return fmt.Errorf("drop to uid %d: setresuid(0) still succeeds", id.UID)
	}
	return nil
}

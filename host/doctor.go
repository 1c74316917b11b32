package host

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"github.com/containers/storage/pkg/idtools"
	"github.com/loftd/loftd/helper/qemu"
	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/libkrun"
	"github.com/loftd/loftd/libkrun/krunfw"
	"github.com/loftd/loftd/rootfs"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// check is one line of `loftd doctor`.
type check struct {
	name   string
	level  string // ok, warn, fail
	detail string
	fix    string
}

func runDoctor(e *env, args []string) error {
	fs := e.newFlagSet("doctor", e.Prog+" doctor [--format table|json]")
	format := formatFlag(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := checkFormat("doctor", *format); err != nil {
		return err
	}
	cfg, err := session.ReadConfig(e.IO)
	if err != nil {
		return err
	}
	stateDir, err := session.StateDir(cfg, e.Getenv)
	if err != nil {
		return err
	}
	krunOK, krunCheck := checkLibkrun()
	fwCheck, qemuCheck := checkKrunfw(), checkQEMU()
	checks := []check{checkKVM(), krunCheck, fwCheck, qemuCheck, checkVirtiofsd(), checkStateFS(stateDir), checkStore(state.State{Dir: stateDir}, cfg)}
	checks = append(checks, checkImageBuild(), checkVMSize(e.Getenv))
	checks = append(checks, checkGuestInit(cfg.Guest.Init), checkNetwork(cfg), checkPasst(cfg.NetworkMode()))
	checks = append(checks, checkSandbox(cfg))
	checks = append(checks, checkRootless()...)
	if tasks, err := (state.State{Dir: stateDir}).ListTasks(); err == nil {
		ram, _ := session.HostResources()
		checks = append(checks, checkMemoryCeilings(tasks, ram))
	}
	qemuOK := fwCheck.level == "ok" && qemuCheck.level == "ok"
	var backend launch.VMM // none
	switch {
	case krunOK:
		backend = launch.VMMKrun
	case qemuOK:
		backend = launch.VMMQEMU
	}
	if err := printDoctor(e.Stdout, *format, checks, backend); err != nil {
		return err
	}
	if backend == "" {
		return session.ExitError{Status: session.ExitFail, Err: fmt.Errorf("doctor: no VM backend can run here (fix libkrun, or QEMU and libkrunfw, as listed above)")}
	}
	return nil
}

// printDoctor prints the checks and the backend a session would use ("" =
// none) as a table for people or as doctorJSON.
func printDoctor(w io.Writer, format string, checks []check, backend launch.VMM) error {
	if format == "json" {
		out := doctorJSON{Checks: []checkJSON{}, Backend: backend.String()}
		for _, c := range checks {
			j := checkJSON{Name: c.name, Level: c.level, Detail: c.detail}
			if c.level != "ok" {
				j.Fix = c.fix
			}
			out.Checks = append(out.Checks, j)
		}
		return writeJSON(w, out)
	}
	for _, c := range checks {
		fmt.Fprintf(w, "%-4s  %-14s %s\n", c.level, c.name, c.detail)
		if c.fix != "" && c.level != "ok" {
			fmt.Fprintf(w, "      %-14s fix: %s\n", "", c.fix)
		}
	}
	switch backend {
	case launch.VMMKrun:
		fmt.Fprintf(w, "\nbackend: krun (libkrun)\n")
	case launch.VMMQEMU:
		fmt.Fprintf(w, "\nbackend: qemu (libkrun is not available; QEMU boots the libkrunfw kernel)\n")
	}
	return nil
}

// checkKVM is libkrun's own precondition (libkrun.CheckKVM): /dev/kvm opens,
// creates a VM, and is not a PVM /dev/kvm that cannot boot libkrunfw's
// kernel.
func checkKVM() check {
	c := check{name: "/dev/kvm", level: "ok", detail: "read-write, creates VMs"}
	if err := libkrun.CheckKVM(); err != nil {
		c.level, c.detail = "warn", err.Error()
		c.fix = "load kvm (modprobe kvm_intel or kvm_amd) and join the kvm group: sudo usermod -aG kvm $USER; without it only QEMU's slow TCG works"
		return c
	}
	return c
}

// checkLibkrun reports libkrun as a session would load it: its release,
// the features it was built with, the libkrunfw it needs, and whether
// sessions can run on it (the same rule --vmm auto applies).
func checkLibkrun() (bool, check) {
	c := check{name: "libkrun", level: "ok"}
	r := session.DescribeLibkrun()
	if r.Path == "" {
		c.level, c.detail = "warn", r.Err.Error()
		c.fix = fmt.Sprintf("install libkrun >= %s (Fedora: dnf install libkrun; Nix: nixpkgs#libkrun) or set %s=/path/to/libkrun.so.1", libkrun.MinVersion, libkrun.LibraryEnv)
		return false, c
	}
	c.detail = strings.Join(r.Lines(), "; ")
	if r.Err != nil {
		c.level = "warn"
		c.fix = "install the libkrunfw that libkrun names above (Fedora: dnf install libkrunfw), or use --vmm qemu"
		if libkrun.CheckKVM() != nil {
			c.fix = "libkrun runs only on a usable /dev/kvm (see /dev/kvm above); --vmm auto uses QEMU here"
		}
		return false, c
	}
	return true, c
}

func checkKrunfw() check {
	c := check{name: "libkrunfw", level: "ok"}
	f, err := krunfw.Locate()
	if err != nil {
		c.level, c.detail = "fail", err.Error()
		c.fix = "install the distribution's libkrunfw, or run scripts/fetch-libkrunfw: it unpacks Debian sid's into $XDG_DATA_HOME/loftd/lib (~/.local/share/loftd/lib), where loftd finds it"
		return c
	}
	c.detail = f.String()
	return c
}

func checkQEMU() check {
	c := check{name: "qemu", level: "ok"}
	r, err := qemu.Probe()
	if err != nil {
		c.level, c.detail = "fail", err.Error()
		c.fix = "sudo apt-get install qemu-system-x86 qemu-system-common (virtiofsd; or the virtiofsd package on newer distributions)"
		return c
	}
	c.detail = fmt.Sprintf("%s (system), %s (%s); accel %s (%s)", r.QEMU, r.Virtiofsd, r.VirtiofsdWhy, r.Accel, r.AccelReason)
	return c
}

// checkVirtiofsd says which virtiofsd the QEMU backend serves shares with,
// its flavor and release, and what that flavor guarantees. The Rust one is
// preferred wherever one is found; QEMU's C one, unmaintained since QEMU
// 8.0, is a warning with the fix.
func checkVirtiofsd() check {
	c := check{name: "virtiofsd", level: "ok"}
	f, err := qemu.LocateVirtiofsd()
	if err != nil {
		c.level, c.detail, c.fix = "fail", err.Error(), qemu.VirtiofsdPart.Hint
		return c
	}
	out, _ := exec.Command(f.Path, "--version").Output()
	version := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	if qemu.IsRustVirtiofsd(f.Path) {
		c.detail = fmt.Sprintf("%s (%s): the Rust virtiofsd, %s; %s", f.Path, f.Why, version, qemu.RustGuarantees)
		return c
	}
	c.level = "warn"
	c.detail = fmt.Sprintf("%s (%s): QEMU's C virtiofsd, %s; %s", f.Path, f.Why, version, qemu.CGuarantees)
	c.fix = "run scripts/fetch-virtiofsd (as root for every user): it builds the Rust virtiofsd from the crate registry, which loftd then prefers"
	return c
}

// checkStore says which containers/storage driver the image store uses.
func checkStore(st state.State, cfg *session.Config) check {
	c := check{name: "image store", level: "ok"}
	driver, why, err := rootfs.DriverFor(st.Images(), cfg.Rootfs.Driver)
	if err != nil {
		c.level, c.detail, c.fix = "fail", err.Error(), "set [rootfs] driver to auto, btrfs, overlay or vfs"
		return c
	}
	c.detail = fmt.Sprintf("driver %s (%s)", driver, why)
	return c
}

// checkStateFS: on btrfs, task roots are O(1) snapshots; elsewhere overlay.
func checkStateFS(dir string) check {
	c := check{name: "state", level: "ok"}
	probe := dir
	for {
		if _, err := os.Stat(probe); err == nil || probe == "/" {
			break
		}
		probe = parentDir(probe)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(probe, &st); err != nil {
		c.level, c.detail = "warn", fmt.Sprintf("%s: %v", dir, err)
		return c
	}
	if st.Type != unix.BTRFS_SUPER_MAGIC {
		c.detail = dir + " is not on btrfs: task roots use overlayfs (fine; btrfs gives O(1) snapshots)"
		return c
	}
	c.detail = dir + " is on btrfs"
	if !mountHasOption(probe, "user_subvol_rm_allowed") {
		c.level = "warn"
		c.detail += " without user_subvol_rm_allowed"
		c.fix = "remount with -o user_subvol_rm_allowed so rootless runs can delete their snapshots quickly"
	}
	return c
}

func parentDir(p string) string {
	if i := strings.LastIndex(strings.TrimSuffix(p, "/"), "/"); i > 0 {
		return p[:i]
	}
	return "/"
}

// mountHasOption reports whether the mount holding path has opt among its
// superblock options. moby's mountinfo parser unescapes mount points
// ("\040" for a space), which a split on blanks did not.
func mountHasOption(path, opt string) bool {
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !holds(m.Mountpoint, path), false
	})
	if err != nil {
		return false
	}
	return slices.Contains(strings.Split(innermost(mounts).VFSOptions, ","), opt)
}

// holds reports whether mount point mp contains path (ParentsFilter's
// plain prefix test would take /a/b for a parent of /a/bc).
func holds(mp, path string) bool {
	return mp == "/" || path == mp || strings.HasPrefix(path, mp+"/")
}

// innermost is the deepest of the mounts holding one path; of equal
// mount points the later one, which covers the earlier.
func innermost(mounts []*mountinfo.Info) *mountinfo.Info {
	best := &mountinfo.Info{}
	for _, m := range mounts {
		if len(m.Mountpoint) >= len(best.Mountpoint) {
			best = m
		}
	}
	return best
}

// checkRootless: subordinate ids and newuidmap, for running without root.
func checkRootless() []check {
	if os.Geteuid() == 0 {
		return []check{{name: "rootless", level: "ok", detail: "running as root: no user namespace needed"}}
	}
	u, err := user.Current()
	if err != nil {
		return []check{{name: "rootless", level: "fail", detail: err.Error()}}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	uids, gids, err := rootfs.SubIDs(u.Username)
	out := subIDChecks(u.Username, uint32(uid), uint32(gid), uids, gids, err)
	c := check{name: "newuidmap", level: "ok"}
	if p, err := exec.LookPath("newuidmap"); err != nil {
		c.level, c.detail, c.fix = "fail", "not found", "sudo apt-get install uidmap"
	} else {
		c.detail = p
	}
	return append(out, c)
}

// wantSubIDs is what an image may need: files owned by ids up to 65535.
const wantSubIDs = 65536

// subIDChecks judges the subordinate ranges by the run's own rule
// (rootfs.KeepIDFor maps the first range only), so doctor cannot pass a
// user whose run then fails: a sum over every range could.
func subIDChecks(name string, uid, gid uint32, uids, gids []idtools.IDMap, readErr error) []check {
	fix := fmt.Sprintf("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s (loftd maps the first range only)", name)
	if readErr != nil {
		return []check{{name: "subordinate ids", level: "fail", detail: readErr.Error(), fix: fix}}
	}
	k, err := rootfs.KeepIDFor(name, uid, gid, uids, gids)
	if err != nil {
		return []check{{name: "subordinate ids", level: "fail", detail: err.Error(), fix: fix}}
	}
	var out []check
	for _, f := range []struct {
		file string
		r    rootfs.IDMap
	}{{"/etc/subuid", k.SubUID}, {"/etc/subgid", k.SubGID}} {
		c := check{name: f.file, level: "ok", detail: fmt.Sprintf("%s:%d:%d, the range loftd maps", name, f.r.HostID, f.r.Size)}
		if f.r.Size < wantSubIDs {
			c.level = "fail"
			c.detail = fmt.Sprintf("%s:%d:%d, the range loftd maps, holds %d ids (need %d)", name, f.r.HostID, f.r.Size, f.r.Size, wantSubIDs)
			c.fix = fix
		}
		out = append(out, c)
	}
	return out
}

// overcommitFactor is how far the running VMs' --mem ceilings may add up
// beyond host RAM before doctor warns (docs/configuration.md, "Memory").
// Free page reporting makes a VM cost what it uses, not its ceiling, so a
// sum above RAM is normal; past twice RAM, a few guests filling their page
// cache at once can push the host into swap or the OOM killer.
const overcommitFactor = 2

// checkMemoryCeilings warns when the --mem ceilings of the running tasks
// (their launch plans) add up to more than overcommitFactor × host RAM.
func checkMemoryCeilings(tasks []state.TaskInfo, hostRAM uint64) check {
	c := check{name: "memory", level: "ok"}
	var sumMiB uint64
	n := 0
	for _, t := range tasks {
		if t.Alive && !t.Claiming && t.Plan != nil {
			sumMiB += uint64(t.Plan.RAMMiB)
			n++
		}
	}
	ramGiB := float64(hostRAM) / (1 << 30)
	c.detail = fmt.Sprintf("%d running VM(s), --mem ceilings %.1f GiB in all, host RAM %.1f GiB", n, float64(sumMiB)/1024, ramGiB)
	if hostRAM > 0 && sumMiB<<20 > overcommitFactor*hostRAM {
		c.level = "warn"
		c.detail += fmt.Sprintf(" (more than %d× RAM)", overcommitFactor)
		c.fix = "give sessions a smaller --mem (or [vm] mem), or end some (loftd ps lists them with the memory each holds)"
	}
	return c
}

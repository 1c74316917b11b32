package host

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"

	"github.com/loftd/loftd/krun"
	"github.com/loftd/loftd/krun/krunfw"
	"github.com/loftd/loftd/vmm/qemu"
	"github.com/loftd/loftd/rootfs"
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
	fs := e.newFlagSet("doctor", e.prog+" doctor")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	stateDir, err := StateDir(cfg, e.getenv)
	if err != nil {
		return err
	}
	krunOK, krunCheck := checkLibkrun()
	fwCheck, qemuCheck := checkKrunfw(), checkQEMU()
	checks := []check{checkKVM(), krunCheck, fwCheck, qemuCheck, checkStateFS(stateDir), checkStore(State{Dir: stateDir}, cfg)}
	checks = append(checks, checkRootless()...)
	for _, c := range checks {
		fmt.Fprintf(e.stdout, "%-4s  %-14s %s\n", c.level, c.name, c.detail)
		if c.fix != "" && c.level != "ok" {
			fmt.Fprintf(e.stdout, "      %-14s fix: %s\n", "", c.fix)
		}
	}
	qemuOK := fwCheck.level == "ok" && qemuCheck.level == "ok"
	switch {
	case krunOK:
		fmt.Fprintf(e.stdout, "\nbackend: krun (libkrun)\n")
	case qemuOK:
		fmt.Fprintf(e.stdout, "\nbackend: qemu (libkrun is not available; QEMU boots the libkrunfw kernel)\n")
	default:
		return exitError{status: exitFail, err: fmt.Errorf("doctor: no VM backend can run here (fix libkrun, or QEMU and libkrunfw, as listed above)")}
	}
	return nil
}

func checkKVM() check {
	c := check{name: "/dev/kvm", level: "ok", detail: "read-write"}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		c.level, c.detail = "warn", err.Error()
		c.fix = "load kvm (modprobe kvm_intel or kvm_amd) and join the kvm group: sudo usermod -aG kvm $USER; without it only QEMU's slow TCG works"
		return c
	}
	f.Close()
	return c
}

func checkLibkrun() (bool, check) {
	c := check{name: "libkrun", level: "ok"}
	lib, err := krun.Open("")
	if err != nil {
		c.level, c.detail = "warn", err.Error()
		c.fix = fmt.Sprintf("install libkrun >= %s (Fedora: dnf install libkrun; Nix: nixpkgs#libkrun) or set %s=/path/to/libkrun.so.1", krun.MinVersion, krun.LibraryEnv)
		return false, c
	}
	defer lib.Close()
	c.detail = "loads from " + lib.Path()
	if missing := lib.Missing(); len(missing) > 0 {
		c.detail += "; optional calls missing: " + strings.Join(missing, ", ")
	}
	return true, c
}

func checkKrunfw() check {
	c := check{name: "libkrunfw", level: "ok"}
	p, err := krunfw.Find()
	if err != nil {
		c.level, c.detail = "fail", err.Error()
		c.fix = "scripts/fetch-libkrunfw DIR unpacks it from Debian sid; then set LOFTD_LIBKRUNFW_LIBRARY to the libkrunfw.so.N it prints"
		return c
	}
	c.detail = p
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
	c.detail = fmt.Sprintf("%s, %s; accel %s (%s)", r.QEMU, r.Virtiofsd, r.Accel, r.AccelReason)
	return c
}

// checkStore says which containers/storage driver the image store uses.
func checkStore(st State, cfg *Config) check {
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
// superblock options (the longest matching mount point in mountinfo).
func mountHasOption(path, opt string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	best, bestOpts := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		mp := fields[4]
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, bestOpts = mp, fields[len(fields)-1]
		}
	}
	return strings.Contains(","+bestOpts+",", ","+opt+",")
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
	var out []check
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		c := check{name: file, level: "ok"}
		n := subordinateCount(file, u.Username, u.Uid)
		if n < 65536 {
			c.level, c.detail = "fail", fmt.Sprintf("%d subordinate ids for %s (need 65536)", n, u.Username)
			c.fix = fmt.Sprintf("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s", u.Username)
		} else {
			c.detail = fmt.Sprintf("%d subordinate ids for %s", n, u.Username)
		}
		out = append(out, c)
	}
	c := check{name: "newuidmap", level: "ok"}
	if p, err := exec.LookPath("newuidmap"); err != nil {
		c.level, c.detail, c.fix = "fail", "not found", "sudo apt-get install uidmap"
	} else {
		c.detail = p
	}
	return append(out, c)
}

func subordinateCount(file, name, uid string) int {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	total := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(parts) == 3 && (parts[0] == name || parts[0] == uid) {
			n, _ := strconv.Atoi(parts[2])
			total += n
		}
	}
	return total
}

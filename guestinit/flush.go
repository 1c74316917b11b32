package guestinit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Before the reboot that ends the VM, what the guest wrote must reach the
// host. sync(2) did that, but it also has every virtiofs share send
// FUSE_SYNCFS, and virtiofsd then syncfs(2)s the host filesystem under the
// share: a flush of everything dirty on that host disk, loftd's own task
// files included, which took 28-260 ms of a run's end on our loaded host
// (and every VM's end flushes the host's disk for all the others), for a
// durability no local process gives its files.
//
// flushForReboot does what sync(2) did without that request. It kills and
// reaps every other process first: their shared mappings are then gone, and
// FUSE writes a mapping's dirty pages back when it is unmapped
// (fuse_vma_close), so the shares hold no dirty pages at all: virtiofsd
// runs without a write-back cache (helper/qemu virtiofsdArgs), so plain writes
// reach the host at once, and nothing is left to ask of the shares.
// (Unmounting them would also write back without FUSE_SYNCFS, but costs the
// eviction of every inode the guest cached, which grows with the workload.)
// Kernel and memory filesystems hold nothing to write. Every other
// filesystem (the disks, the overlay on /nix, whatever the workload
// mounted) gets syncfs(2), once per filesystem. When a process survives, a
// pinned mount namespace (an nsfs mount) hides mounts this table does not
// show, or the table cannot be read, it is sync(2).

// reapWait bounds the wait for the killed processes to be reaped.
const reapWait = 2 * time.Second

// memoryFS are the filesystems with nothing to write back.
var memoryFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true,
	"ramfs": true, "cgroup": true, "cgroup2": true, "mqueue": true, "securityfs": true,
	"debugfs": true, "tracefs": true, "configfs": true, "bpf": true, "pstore": true,
	"hugetlbfs": true, "binfmt_misc": true, "fusectl": true, "selinuxfs": true,
	"efivarfs": true, "autofs": true,
}

// mount is what the flush needs of a line of /proc/self/mountinfo.
type mount struct {
	dev    string // MAJOR:MINOR, one per filesystem
	point  string
	fstype string
}

// parseMountinfo reads the fields the flush needs from mountinfo's text
// (proc(5): ID PARENT MAJOR:MINOR ROOT POINT OPTIONS [OPTIONAL...] - TYPE
// SOURCE SUPER). Its own few lines rather than moby's parser: under TCG
// every code path the guest runs for the first time is translated, and
// moby's took 12-20 ms of the VM's end.
func parseMountinfo(text string) ([]mount, error) {
	var mounts []mount
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep < 6 || sep+1 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %q: no filesystem type", line)
		}
		mounts = append(mounts, mount{dev: f[2], point: unescapeOctal(f[4]), fstype: f[sep+1]})
	}
	return mounts, nil
}

// unescapeOctal undoes the kernel's \ooo escapes (space, tab, newline,
// backslash) in a mountinfo path.
func unescapeOctal(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// flushPlan returns the mount points to syncfs(2), from the mount table
// (mountinfo order): one per filesystem that holds data, innermost first.
// ok is false when a mount namespace is pinned (an nsfs mount), whose
// mounts this table does not show: then only sync(2) covers them.
func flushPlan(mounts []mount) (points []string, ok bool) {
	order := slices.Clone(mounts)
	slices.Reverse(order)
	slices.SortStableFunc(order, func(a, b mount) int {
		return depth(b.point) - depth(a.point)
	})
	synced := map[string]bool{}
	for _, m := range order {
		switch {
		case m.fstype == "nsfs":
			return nil, false
		case m.fstype == "virtiofs", memoryFS[m.fstype], synced[m.dev]:
		default:
			synced[m.dev] = true
			points = append(points, m.point)
		}
	}
	return points, true
}

func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// flushForReboot is the PID 1 init's last write-back before the reboot
// (System.Sync); errors go to stderr, as nothing can be done about them.
func flushForReboot(stderr io.Writer) {
	if !reapAll(reapWait) {
		unix.Sync()
		return
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		unix.Sync()
		return
	}
	mounts, err := parseMountinfo(string(data))
	if err != nil {
		unix.Sync()
		return
	}
	points, ok := flushPlan(mounts)
	if !ok {
		unix.Sync()
		return
	}
	for _, p := range points {
		if err := syncFS(p); err != nil {
			fmt.Fprintf(stderr, "guest-init: %v\n", err)
		}
	}
}

// syncFS runs syncfs(2) on the filesystem mounted at point.
func syncFS(point string) error {
	fd, err := unix.Open(point, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: point, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: point, Err: err}
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFDIR && t != unix.S_IFREG {
		return nil // a device or fifo bound over a path holds no data
	}
	if err := unix.Syncfs(fd); err != nil {
		return &os.PathError{Op: "syncfs", Path: point, Err: err}
	}
	return nil
}

// reapAll kills every process but this one and reaps them; false when some
// are still there after wait (a process stuck in the kernel).
func reapAll(wait time.Duration) bool {
	_ = syscall.Kill(-1, syscall.SIGKILL)
	deadline := time.Now().Add(wait)
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.ECHILD):
			return true
		case errors.Is(err, syscall.EINTR), err == nil && pid > 0:
		case err != nil || time.Now().After(deadline):
			return false
		default: // children left, none ended yet
			time.Sleep(time.Millisecond)
		}
	}
}

// commitNixDiskStep commits, in the background, what mounting the nix disk
// and the overlays whose upper layers it holds wrote: overlayfs remakes its
// work directory at every mount, so the disk is dirty after every boot, and
// its syncfs was 21 ms of the 28 ms flush at the VM's end under TCG. Started
// before the workload, the commit runs while it does; the flush before the
// reboot still syncs the disk, and finds only what the workload wrote (a
// syncfs that meets this commit still running waits for it).
func (e *enter) commitNixDiskStep() Step {
	return Step{Desc: "syncfs " + NixDiskMount + " & (the mounts' own writes, off the run's end)", Do: func() error {
		go func() {
			t0 := e.sys.Now()
			err := syncFS(filepath.Join(e.sys.SysRoot, NixDiskMount))
			if err != nil {
				e.logf("guest-init: background syncfs %s: %v", NixDiskMount, err)
				return
			}
			e.logf("guest-init: background syncfs %s %s", NixDiskMount, ms(e.sys.Now().Sub(t0)))
		}()
		return nil
	}}
}

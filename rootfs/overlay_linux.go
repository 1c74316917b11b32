package rootfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// overlayTask mounts an overlay with the image's layers as lower and a
// per-task upper/work in the task directory, with the kernel or, when fuse
// is set, with fuse-overlayfs.
func (s *Store) overlayTask(t *Task, fuse bool) error {
	lowers, err := s.lowerDirs(t.Image.TopLayer)
	if err != nil {
		return err
	}
	return mountOverlay(t, lowers, fuse)
}

// mountOverlay mounts lowers (top first) at t.Root with a fresh upper and
// work directory in t.Dir: the task writes only there.
func mountOverlay(t *Task, lowers []string, fuse bool) error {
	upper, work := filepath.Join(t.Dir, taskUpperDir), filepath.Join(t.Dir, taskWorkDir)
	for _, d := range []string{t.Root, upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	l := overlayLayers{lowers: lowers, upper: upper, work: work}
	if fuse {
		return mountFuseOverlay(l, t.Dir, t.Root)
	}
	// Unprivileged overlay keeps its metadata in user.* xattrs, as the
	// rootless overlay storage driver wrote the layers.
	l.userxattr = inUserNS()
	// volatile: the task root goes with the task, so the overlay need not
	// pass syncs on to the host's disk. Without it, unmounting the root at
	// the session's end syncfs(2)s the host filesystem under the task
	// directory (7 ms on a quiet host, more under write load), and every
	// fsync in the guest reaches the host's disk.
	l.volatileSync = true
	return mountKernelOverlay(l, t.Root)
}

// lowerDirs lists the directories to stack for a layer, top first. The
// overlay driver keeps one diff per layer (reached through its short "l/"
// links to keep the mount options under a page); btrfs and vfs keep the
// whole tree in the top layer.
func (s *Store) lowerDirs(top string) ([]string, error) {
	switch s.driver {
	case DriverBtrfs:
		return []string{filepath.Join(s.root, "btrfs", "subvolumes", top)}, nil
	case DriverVFS:
		return []string{filepath.Join(s.root, "vfs", "dir", top)}, nil
	}
	var dirs []string
	for id := top; id != ""; {
		l, err := s.store.Layer(id)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", id, err)
		}
		dir := filepath.Join(s.root, "overlay", id, "diff")
		if link, err := os.ReadFile(filepath.Join(s.root, "overlay", id, "link")); err == nil {
			dir = filepath.Join(s.root, "overlay", "l", strings.TrimSpace(string(link)))
		}
		dirs = append(dirs, dir)
		id = l.Parent
	}
	return dirs, nil
}

// unmountTaskRoot unmounts everything mounted on root (a crashed run may
// leave more than one), using fusermount for a FUSE mount it may not undo.
func unmountTaskRoot(root string) error {
	for range 8 {
		mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(root))
		if err != nil {
			return fmt.Errorf("read mountinfo: %w", err)
		}
		if len(mounts) == 0 {
			return nil
		}
		err = unix.Unmount(root, 0)
		if errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(root, unix.MNT_DETACH)
		}
		if err != nil && strings.HasPrefix(mounts[0].FSType, "fuse") {
			err = fusermountU(root)
		}
		if err != nil {
			return &os.PathError{Op: "umount", Path: root, Err: err}
		}
	}
	return fmt.Errorf("umount %s: still mounted after 8 unmounts", root)
}

func fusermountU(root string) error {
	for _, bin := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(bin); err == nil {
			if out, err := exec.Command(p, "-u", root).CombinedOutput(); err != nil {
				return fmt.Errorf("%s -u: %w: %s", bin, err, strings.TrimSpace(string(out)))
			}
			return nil
		}
	}
	return errors.New("fusermount not found (apt-get install fuse3)")
}

// inUserNS reports whether this process runs in a user namespace other than
// the initial one, whose uid_map is the identity over the whole range.
func inUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

package guestinit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/loftd/loftd/contract"
	"golang.org/x/sys/unix"
)

// Guest paths of agentbox's overlaid tool state (contract.Volume.Overlay).
const (
	// toolLowerDir holds the read-only shares, one directory per target,
	// out of the workload's way.
	toolLowerDir = "/run/loftd/tool-lower"
	// toolStateDir on the nix disk holds each target's upper and work
	// layers: the guest's changes live with the workspace's disks.
	toolStateDir = NixDiskMount + "/tool-state"
	// toolStateTmp holds them without a nix disk: changes end with the run.
	toolStateTmp = "/run/loftd/tool-state"
)

// toolStateSteps show each overlaid tool-state share (~/.claude, …) at its
// target as a writable overlay: the host's directory, shared read-only, is
// the lower layer, and the upper layer is on the nix disk. A hook the guest
// writes into ~/.claude/settings.json stays in this workspace's guest and
// never reaches the host (issue 17, item 6). They run after the disk
// steps: the upper layer is on the nix disk.
func (e *enter) toolStateSteps() []Step {
	vols, err := contract.ParseVolumes(e.cfg.Env)
	if err != nil {
		return nil // volumeSteps reports it
	}
	base := toolStateTmp
	if e.guest.NixDisk != "" {
		base = toolStateDir
	}
	d := &diskPrep{e: e, user: e.guest.User, uid: e.guest.UID, gid: e.guest.GID}
	var steps []Step
	for _, v := range vols {
		if !v.Overlay {
			continue
		}
		l := toolLayers(base, v.Target)
		desc := fmt.Sprintf("mount -t virtiofs -o ro %s %s; mount -t overlay -o lowerdir=%s,upperdir=%s,workdir=%s overlay %s",
			v.Tag, l.lower, l.lower, l.upper, l.work, v.Target)
		steps = append(steps, Step{Desc: desc, Do: func() error { return d.mountToolState(v, l) }})
	}
	return steps
}

// toolLayerDirs are one overlaid target's directories in the guest.
type toolLayerDirs struct{ lower, upper, work string }

func toolLayers(base, target string) toolLayerDirs {
	key := toolStateKey(target)
	return toolLayerDirs{
		lower: path.Join(toolLowerDir, key),
		upper: path.Join(base, key, "upper"),
		work:  path.Join(base, key, "work"),
	}
}

// toolStateKey names a target's layers: injective, and only letters,
// digits, '.', '-' and '_' (never ',', ':' or '=', which overlay's
// options would read): every other byte, '_' included, becomes _XX.
func toolStateKey(target string) string {
	var b strings.Builder
	for _, c := range []byte(strings.TrimPrefix(target, "/")) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return b.String()
}

func (d *diskPrep) mountToolState(v contract.Volume, l toolLayerDirs) error {
	if err := os.MkdirAll(d.path(l.lower), 0o755); err != nil {
		return err
	}
	if err := d.e.sys.Mount(v.Tag, d.path(l.lower), "virtiofs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return &os.PathError{Op: "mount virtiofs " + v.Tag, Path: l.lower, Err: err}
	}
	if err := d.makeUpper(l); err != nil {
		return fmt.Errorf("prepare the tool state of %s: %w", v.Target, err)
	}
	if err := d.mkdirOwned(v.Target, 0o755, d.uid, d.gid); err != nil {
		return fmt.Errorf("prepare %s: %w", v.Target, err)
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", d.path(l.lower), d.path(l.upper), d.path(l.work))
	if err := d.e.sys.Mount("overlay", d.path(v.Target), "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount the tool-state overlay on %s (%s): %w", v.Target, opts, err)
	}
	return nil
}

// makeUpper makes the upper and work layers the first time, the upper's
// root with the owner and mode of the share's root (the overlay's root
// takes them from the upper: a root-owned upper would lock the user out of
// their own ~/.claude). Later boots keep what is there.
func (d *diskPrep) makeUpper(l toolLayerDirs) error {
	upper := d.path(l.upper)
	if _, err := os.Lstat(upper); err == nil {
		return os.MkdirAll(d.path(l.work), 0o700)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	fi, err := os.Stat(d.path(l.lower))
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("stat %s: no owner", l.lower)
	}
	if err := os.MkdirAll(path.Dir(upper), 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(d.path(l.work), 0o700); err != nil {
		return err
	}
	// Made under a temporary name, renamed once whole: a boot that dies
	// halfway leaves no root-owned upper behind.
	tmp := upper + ".new"
	_ = os.Remove(tmp)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if err := os.Lchown(tmp, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := os.Chmod(tmp, fi.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, upper)
}

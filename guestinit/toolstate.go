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
		share, overlay := toolStateMounts(v, l)
		steps = append(steps, Step{Desc: share.String() + "; " + overlay.String(), Do: func() error { return d.mountToolState(v, l) }})
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

// toolStateMounts are the two mounts of an overlaid share: the share
// read-only out of sight, and the overlay at its target.
func toolStateMounts(v contract.Volume, l toolLayerDirs) (share, overlay mountOp) {
	share = mountOp{FSType: "virtiofs", Source: v.Tag, Target: l.lower, Flags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV}
	overlay = mountOp{FSType: "overlay", Source: "overlay", Target: v.Target, Flags: unix.MS_NOSUID | unix.MS_NODEV,
		Lower: l.lower, Upper: l.upper, Work: l.work}
	return share, overlay
}

func (d *diskPrep) mountToolState(v contract.Volume, l toolLayerDirs) error {
	share, overlay := toolStateMounts(v, l)
	root := d.e.sys.SysRoot
	if err := os.MkdirAll(d.path(l.lower), 0o755); err != nil {
		return err
	}
	if err := share.under(root).do(d.e.sys.Mount); err != nil {
		return err
	}
	if err := d.makeUpper(l); err != nil {
		return fmt.Errorf("prepare the tool state of %s: %w", v.Target, err)
	}
	if err := d.mkdirOwned(v.Target, 0o755, d.uid, d.gid); err != nil {
		return fmt.Errorf("prepare %s: %w", v.Target, err)
	}
	if err := overlay.under(root).do(d.e.sys.Mount); err != nil {
		return fmt.Errorf("mount the tool state of %s: %w", v.Target, err)
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

package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/loftd/loftd/guestinit/contract"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/rootfs/inroot"
)

// defaultToolMounts are agentbox's tool-state mounts when the config sets
// none: the agents' and gh's logins and the git identity, so a fresh VM is
// already signed in. Each is used only when it exists on the host.
var defaultToolMounts = []string{"~/.codex", "~/.claude", "~/.config/gh", "~/.gitconfig"}

// checkToolMount validates one [agentbox] mounts entry: a path under the
// home, "~/" and a relative path that stays below it.
func checkToolMount(m string) error {
	rel, ok := strings.CutPrefix(m, "~/")
	clean := path.Clean(rel)
	if !ok || rel == "" || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsAny(m, ":,\n") {
		return fmt.Errorf("agentbox.mounts %q: want a path below the home written ~/PATH (~/.codex), without ':' or ','", m)
	}
	return nil
}

// toolMounts turns agentbox's tool-state mounts into volumes: ~/REL on the
// host (home) at /home/USER/REL in the guest, read-write (the tools
// refresh their tokens), the ones absent on the host skipped. The loftd
// profile has none.
func toolMounts(profile string, cfg *Config, home string) ([]Volume, error) {
	if profile != "agentbox" || home == "" {
		return nil, nil
	}
	list := defaultToolMounts
	if cfg.Agentbox.Mounts != nil {
		list = *cfg.Agentbox.Mounts
	}
	var vols []Volume
	for _, m := range list {
		if err := checkToolMount(m); err != nil {
			return nil, err
		}
		rel := path.Clean(strings.TrimPrefix(m, "~/"))
		src := filepath.Join(home, rel)
		fi, err := os.Stat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("agentbox.mounts %s: %w", m, err)
		}
		if !fi.IsDir() && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("agentbox.mounts %s: %s is neither a directory nor a regular file", m, src)
		}
		vols = append(vols, Volume{Source: src, Target: path.Join("/home", contract.DefaultUser, rel), File: !fi.IsDir()})
	}
	return vols, nil
}

// volumeShares splits the session's volumes: directories become virtiofs
// shares (tags loftd-vol0, 1, …) for the plan and the guest's list of
// mounts; files are copied into the task root by copyVolumeFiles.
func volumeShares(vols []Volume) ([]launch.Share, []contract.Volume) {
	var shares []launch.Share
	var mounts []contract.Volume
	for _, v := range vols {
		if v.File {
			continue
		}
		tag := contract.VolumeTagPrefix + strconv.Itoa(len(shares))
		shares = append(shares, launch.Share{Tag: tag, Path: v.Source, ReadOnly: v.ReadOnly})
		mounts = append(mounts, contract.Volume{Tag: tag, Target: v.Target, ReadOnly: v.ReadOnly})
	}
	return shares, mounts
}

// copyVolumeFiles copies each single-file volume into root at its target,
// owned by the guest user (uid, gid) with the host file's mode. A copy,
// not a share: virtiofs shares directories, and sharing the parent would
// show the guest every sibling of the file (all of ~ for ~/.gitconfig).
// The guest's changes to it stay in the guest.
func copyVolumeFiles(root string, vols []Volume, uid, gid int) error {
	for _, v := range vols {
		if !v.File {
			continue
		}
		if err := copyIntoRoot(root, v, uid, gid); err != nil {
			return fmt.Errorf("copy %s to the guest's %s: %w", v.Source, v.Target, err)
		}
	}
	return nil
}

func copyIntoRoot(root string, v Volume, uid, gid int) error {
	f, err := os.Open(v.Source)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	mode := fi.Mode().Perm()
	if v.ReadOnly {
		mode &^= 0o222
	}
	// root is the image's tree: inroot never follows a symlink planted on
	// the way, and leaves a real file at the target.
	if err := inroot.WriteFile(root, v.Target, f, mode); err != nil {
		return err
	}
	return os.Lchown(filepath.Join(root, v.Target), uid, gid)
}

// writeVolumes tells the guest which shares to mount where, and copies the
// single-file volumes into the task root.
func (s *session) writeVolumes() error {
	_, mounts := volumeShares(s.opts.Volumes)
	if env := contract.VolumesEnv(mounts); env != "" {
		s.kc.Env = append(s.kc.Env, env)
	}
	return copyVolumeFiles(s.root, s.opts.Volumes, s.id.guestUID, s.id.guestGID)
}

// maxToolShares bounds the directories agentbox's tool-state mounts share:
// QEMU's microvm has 8 virtio-mmio devices, 6 of them taken by the root,
// the workspace, the two disks, the console and the network
// (docs/architecture.md). Files are copies and cost nothing.
const maxToolShares = 2

// capToolShares keeps the first maxToolShares directories of the tool
// mounts and says which it left out, and how to choose.
func (e *env) capToolShares(vols []Volume) []Volume {
	var out []Volume
	dirs := 0
	for _, v := range vols {
		if !v.File {
			if dirs == maxToolShares {
				fmt.Fprintf(e.stderr, "%s: not mounting %s: the VM has room for %d tool-state directories (choose them with [agentbox] mounts)\n", e.prog, v.Source, maxToolShares)
				continue
			}
			dirs++
		}
		out = append(out, v)
	}
	return out
}

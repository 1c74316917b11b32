package session

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/loftd/loftd/contract"
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
// host (home) at /home/USER/REL in the guest, the ones absent on the host
// skipped. The loftd profile has none. The guest must be able to write
// them (the tools refresh their tokens) but not the host's files, where a
// planted hook would run on the host: a directory is shared read-only and
// overlaid in the guest, unless live (then read-write); a file is a copy.
func toolMounts(profile string, cfg *Config, home string, live bool) ([]Volume, error) {
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
		v := Volume{Source: src, Target: path.Join("/home", contract.DefaultUser, rel), File: !fi.IsDir()}
		if fi.IsDir() && !live {
			v.ReadOnly, v.Overlay = true, true
		}
		vols = append(vols, v)
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
		mounts = append(mounts, contract.Volume{Tag: tag, Target: v.Target, ReadOnly: v.ReadOnly, Overlay: v.Overlay})
	}
	return shares, mounts
}

// copyVolumeFiles copies each single-file volume into root at its target,
// owned by the guest user (uid, gid) with the host file's mode. A copy,
// not a share: virtiofs shares directories, and sharing the parent would
// show the guest every sibling of the file (all of ~ for ~/.gitconfig).
// The guest's changes to it stay in the guest. asRoot: loftd runs as the
// host's root for the user uid, and copies only what uid may read.
func copyVolumeFiles(root string, vols []Volume, id identity, asRoot bool) error {
	for _, v := range vols {
		if !v.File {
			continue
		}
		if err := copyIntoRoot(root, v, id, asRoot); err != nil {
			return fmt.Errorf("copy %s to the guest's %s: %w", v.Source, v.Target, err)
		}
	}
	return nil
}

// copyIntoRoot copies one file volume: as root, only when the guest user's
// host identity may read it, and owned in the guest by its guest ids.
func copyIntoRoot(root string, v Volume, id identity, asRoot bool) error {
	// Source is a real path (resolveVolumes): a link on it now is one
	// swapped in since, and is refused rather than followed.
	f, err := inroot.Open("/", v.Source)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is no longer a regular file", v.Source)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && asRoot && !readableBy(fi.Mode(), st.Uid, st.Gid, id.hostUID, id.hostGID) {
		return fmt.Errorf("%s (owner %d, group %d, mode %v): %w %d:%d", v.Source, st.Uid, st.Gid, fi.Mode().Perm(), errNotReadable, id.hostUID, id.hostGID)
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
	return os.Lchown(filepath.Join(root, v.Target), id.guestUID, id.guestGID)
}

// dropShadowedTools leaves out the tool-state mounts whose guest target a
// -v volume names: the user's explicit volume wins, and says so.
func dropShadowedTools(e IO, tools, vols []Volume) []Volume {
	var out []Volume
	for _, tv := range tools {
		if i := slices.IndexFunc(vols, func(v Volume) bool { return v.Target == tv.Target }); i >= 0 {
			fmt.Fprintf(e.Stderr, "%s: not mounting %s: --volume %s:%s takes its place\n", e.Prog, tv.Source, vols[i].Source, tv.Target)
			continue
		}
		out = append(out, tv)
	}
	return out
}

// maxToolShares bounds the directories agentbox's tool-state mounts share:
// QEMU's microvm has 8 virtio-mmio devices, 6 of them taken by the root,
// the workspace, the two disks, the console and the network
// (docs/architecture.md). Files are copies and cost nothing.
const maxToolShares = 2

// capToolShares keeps the first maxToolShares directories of the tool
// mounts and says which it left out, and how to choose.
func capToolShares(e IO, vols []Volume) []Volume {
	var out []Volume
	dirs := 0
	for _, v := range vols {
		if !v.File {
			if dirs == maxToolShares {
				fmt.Fprintf(e.Stderr, "%s: not mounting %s: the VM has room for %d tool-state directories (choose them with [agentbox] mounts)\n", e.Prog, v.Source, maxToolShares)
				continue
			}
			dirs++
		}
		out = append(out, v)
	}
	return out
}

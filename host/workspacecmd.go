package host

import (
	"errors"
	"fmt"
	"os"

	"github.com/loftd/loftd/disks"
	"github.com/loftd/loftd/disks/loop"
	"github.com/loftd/loftd/guestinit/contract"
	"github.com/loftd/loftd/host/state"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// workspaceFlag declares --workspace on a maintenance command.
func workspaceFlag(fs *pflag.FlagSet) *string {
	return fs.String("workspace", "", "project directory (default: git top level, else the current directory)")
}

// openWorkspace resolves the state of the workspace at dir ("" = here).
func (e *env) openWorkspace(dir string) (*Config, state.State, state.Workspace, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, state.State{}, state.Workspace{}, err
	}
	st, err := e.state(cfg)
	if err != nil {
		return nil, state.State{}, state.Workspace{}, err
	}
	if dir == "" {
		dir = "."
	}
	src, err := state.FindWorkspace(dir)
	if err != nil {
		return nil, state.State{}, state.Workspace{}, err
	}
	return cfg, st, st.Workspace(src), nil
}

func runResize(e *env, args []string) error {
	fs := e.newFlagSet("resize", e.prog+" resize --target nix|containers --size N [--workspace DIR]")
	target := fs.String("target", "", "disk to grow: nix or containers")
	size := fs.String("size", "", "new size: 128 (GiB), 128G, 512MiB, 1T; must be larger than the current one")
	wsDir := workspaceFlag(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if *target != "nix" && *target != "containers" {
		return usagef("resize: --target %q: want nix or containers", *target)
	}
	n, err := disks.ParseSize(*size)
	if err != nil {
		return usagef("resize: --size: %v", err)
	}
	_, _, ws, err := e.openWorkspace(*wsDir)
	if err != nil {
		return err
	}
	path := ws.NixDisk()
	if *target == "containers" {
		path = ws.ContainersDisk()
	}
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("resize %s: workspace %s has no %s disk yet (it is made on the first run; start one with '%s -- true')", *target, ws.Source, *target, e.prog)
	}
	lock, err := disks.Lock(ws.Lock(), true)
	if err != nil {
		return fmt.Errorf("resize %s: %w", *target, err)
	}
	defer lock.Close()
	if err := disks.Grow(path, n); err != nil {
		return fmt.Errorf("resize %s: %w", *target, err)
	}
	return e.growFilesystem(*target, path, n)
}

// growFilesystem grows the btrfs inside a disk whose file just grew. As
// root it loop-mounts the disk on the host; rootless, that needs the guest
// side of resize, which is not built yet, and the command says so.
func (e *env) growFilesystem(target, path string, n int64) error {
	if os.Geteuid() != 0 {
		return exitError{status: exitFail, err: fmt.Errorf(
			"resize %s: %s now holds %s, but the btrfs filesystem inside was NOT grown: rootless, that needs the guest side of resize, which is not built yet (nothing was lost; run the same command as root to finish it)",
			target, path, disks.FormatSize(n))}
	}
	mnt, err := os.MkdirTemp("", "loftd-resize-")
	if err != nil {
		return fmt.Errorf("resize %s: %w", target, err)
	}
	defer os.Remove(mnt)
	if _, err := loop.Mount(path, mnt, "btrfs", ""); err != nil {
		return fmt.Errorf("resize %s: %w", target, err)
	}
	gerr := disks.GrowFilesystem(mnt)
	uerr := unix.Unmount(mnt, 0)
	if err := errors.Join(gerr, uerr); err != nil {
		return fmt.Errorf("resize %s: %w", target, err)
	}
	fmt.Fprintf(e.stderr, "%s: %s disk %s and its filesystem now hold %s\n", e.prog, target, path, disks.FormatSize(n))
	return nil
}

func runResetNix(e *env, args []string) error {
	fs := e.newFlagSet("reset-nix", e.prog+" reset-nix --force [--workspace DIR]")
	force := fs.Bool("force", false, "really discard the workspace's /nix disk")
	wsDir := workspaceFlag(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	cfg, _, ws, err := e.openWorkspace(*wsDir)
	if err != nil {
		return err
	}
	if !*force {
		return usagef("reset-nix discards everything in /nix of workspace %s (%s); rerun with --force to do it", ws.Source, ws.NixDisk())
	}
	if err := os.MkdirAll(ws.Dir, 0o700); err != nil {
		return fmt.Errorf("reset-nix: %w", err)
	}
	lock, err := disks.Lock(ws.Lock(), true)
	if err != nil {
		return fmt.Errorf("reset-nix: %w", err)
	}
	defer lock.Close()
	size := sizeOr(cfg.Disks.NixSize)
	if err := disks.Reset(ws.NixDisk(), contract.NixLabel, size); err != nil {
		return fmt.Errorf("reset-nix: %w", err)
	}
	fmt.Fprintf(e.stderr, "%s: %s is a fresh, empty %s nix disk\n", e.prog, ws.NixDisk(), disks.FormatSize(size))
	return nil
}

package host

import (
	"errors"
	"fmt"
	"os"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/disks"
	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/launch"
	"github.com/spf13/pflag"
)

// workspaceFlag declares --workspace on a maintenance command.
func workspaceFlag(fs *pflag.FlagSet) *string {
	return fs.String("workspace", "", "project directory (default: git top level, else the current directory)")
}

// openWorkspace resolves the state of the workspace at dir ("" = here).
func openWorkspace(e *env, dir string) (*session.Config, state.State, state.Workspace, error) {
	cfg, err := session.ReadConfig(e.IO)
	if err != nil {
		return nil, state.State{}, state.Workspace{}, err
	}
	st, err := session.OpenState(e.IO, cfg)
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
	fs := e.newFlagSet("resize", e.Prog+" resize --target nix|containers --size N [--workspace DIR]")
	target := fs.String("target", "", "disk to grow: nix or containers")
	size := fs.String("size", "", "new size: 128 (GiB), 128G, 512MiB, 1T; must be larger than the current one")
	wsDir := workspaceFlag(fs)
	vmmFlag := fs.String("vmm", "", "VM backend of the maintenance VM: krun, qemu or auto")
	guestInit := fs.String("guest-init", "", "guest init binary to boot (default: loftd-guest-init next to loftd)")
	debug := fs.Bool("debug", false, "debug logs on stderr")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if *target != "nix" && *target != "containers" {
		return session.Usagef("resize: --target %q: want nix or containers", *target)
	}
	vmm, err := launch.ParseVMM(*vmmFlag)
	if err != nil {
		return session.Usagef("resize: --vmm %v", err)
	}
	n, err := disks.ParseSize(*size)
	if err != nil {
		return session.Usagef("resize: --size: %v", err)
	}
	e.Log = session.NewLogger(e.Stderr, *debug)
	cfg, st, ws, err := openWorkspace(e, *wsDir)
	if err != nil {
		return err
	}
	// Rootless, the maintenance VM runs in the keep-id namespace like a
	// session's (virtiofsd needs its capabilities there).
	if err := session.EnterUserNamespace(e.IO, cfg); err != nil {
		return session.ExitError{Status: session.ExitSetup, Err: err}
	}
	if *vmmFlag == "" {
		vmm, _ = launch.ParseVMM(cfg.VM.VMM) // checked when the config was read
	}
	id, path := contract.NixDiskID, ws.NixDisk()
	if *target == "containers" {
		id, path = contract.ContainersDiskID, ws.ContainersDisk()
	}
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("resize %s: workspace %s has no %s disk yet (it is made on the first run; start one with '%s -- true')", *target, ws.Source, *target, e.Prog)
	}
	lock, err := disks.Lock(ws.Lock(), true)
	if err != nil {
		return fmt.Errorf("resize %s: %w", *target, err)
	}
	defer lock.Close()
	if err := growFile(path, n); err != nil {
		return fmt.Errorf("resize %s: %w", *target, err)
	}
	m := session.Maintenance{
		Disk: launch.Disk{ID: id, Path: path}, VMM: vmm, GuestInit: *guestInit, Debug: *debug,
	}
	if m.GuestInit == "" {
		m.GuestInit = cfg.Guest.Init
	}
	uid, gid := session.UserIDs(-1, -1)
	m.Guest = contract.Guest{Mode: contract.ModeResize, UID: uid, GID: gid, User: contract.DefaultUser, ResizeDisk: id}
	status, err := session.RunMaintenance(e.IO, st, m)
	if err != nil || status != 0 {
		why := fmt.Sprintf("the maintenance VM ended with status %d", status)
		if err != nil {
			why = err.Error()
		}
		return session.ExitError{Status: session.ExitFail, Err: fmt.Errorf(
			"resize %s: %s now holds %s, but its btrfs filesystem was NOT grown: %s. Nothing was lost: run the same command again to finish it",
			*target, path, disks.FormatSize(n), why)}
	}
	fmt.Fprintf(e.Stderr, "%s: %s disk %s and its filesystem now hold %s\n", e.Prog, *target, path, disks.FormatSize(n))
	return nil
}

// growFile grows the disk file to n. A file that has that size already but
// whose filesystem is smaller is an earlier resize whose maintenance VM
// failed: it is not refused, so running the same command again finishes
// it. The superblock is only read, never mounted.
func growFile(path string, n int64) error {
	err := disks.Grow(path, n)
	if !errors.Is(err, disks.ErrSameSize) {
		return err
	}
	f, oerr := os.Open(path)
	if oerr != nil {
		return err
	}
	defer f.Close()
	if sb, serr := disks.ReadSuper(f); serr == nil && sb.TotalBytes < n {
		return nil
	}
	return err
}

func runResetNix(e *env, args []string) error {
	fs := e.newFlagSet("reset-nix", e.Prog+" reset-nix --force [--workspace DIR]")
	force := fs.Bool("force", false, "really discard the workspace's /nix disk")
	wsDir := workspaceFlag(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	cfg, _, ws, err := openWorkspace(e, *wsDir)
	if err != nil {
		return err
	}
	if !*force {
		return session.Usagef("reset-nix discards everything in /nix of workspace %s (%s); keep a copy first with '%s snapshot save --target nix', then rerun with --force to do it", ws.Source, ws.NixDisk(), e.Prog)
	}
	if err := os.MkdirAll(ws.Dir, 0o700); err != nil {
		return fmt.Errorf("reset-nix: %w", err)
	}
	lock, err := disks.Lock(ws.Lock(), true)
	if err != nil {
		return fmt.Errorf("reset-nix: %w", err)
	}
	defer lock.Close()
	size := session.SizeOr(cfg.Disks.NixSize)
	if err := disks.Reset(ws.NixDisk(), contract.NixLabel, size); err != nil {
		return fmt.Errorf("reset-nix: %w", err)
	}
	fmt.Fprintf(e.Stderr, "%s: %s is a fresh, empty %s nix disk\n", e.Prog, ws.NixDisk(), disks.FormatSize(size))
	return nil
}

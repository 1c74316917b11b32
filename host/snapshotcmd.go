package host

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/disks"
	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/launch"
)

// snapshotOp is one snapshot command: a verb on one disk of a workspace.
type snapshotOp struct {
	e                  *env
	cfg                *session.Config
	st                 state.State
	ws                 state.Workspace
	verb, target, name string
	method             string // auto, file or in-disk
	disk, dir          string
	vmm, guestInit     string
	debug              bool
}

// runSnapshot saves, lists, restores and removes snapshots of one
// workspace disk: a copy of the disk file (a reflink where the state
// directory's filesystem has them), else a btrfs snapshot inside the disk
// made by a maintenance VM; the host never mounts the guest's filesystem.
// save, restore and rm hold the workspace lock exclusively, so none runs
// while a VM uses the disk.
func runSnapshot(e *env, args []string) error {
	fs := e.newFlagSet("snapshot", e.Prog+" snapshot save|list|restore|rm --target nix|containers [NAME] [--workspace DIR]")
	target := fs.String("target", "nix", "disk: nix or containers")
	method := fs.String("method", "auto", "save: file (a copy of the disk file: a reflink where the filesystem has them, else a sparse copy),\nin-disk (a btrfs snapshot inside the disk, made in a maintenance VM) or auto (file with reflinks, else in-disk)")
	wsDir := workspaceFlag(fs)
	format := formatFlag(fs)
	vmmFlag := fs.String("vmm", "", "VM backend of the maintenance VM (in-disk snapshots): krun, qemu or auto")
	guestInit := fs.String("guest-init", "", "guest init binary the maintenance VM boots (default: loftd-guest-init next to loftd)")
	debug := fs.Bool("debug", false, "debug logs on stderr")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 || len(rest) > 2 {
		return session.Usagef("snapshot: want save|list|restore|rm [NAME]")
	}
	op := &snapshotOp{e: e, verb: rest[0], target: *target, method: *method, vmm: *vmmFlag, guestInit: *guestInit, debug: *debug}
	if len(rest) == 2 {
		op.name = rest[1]
	}
	switch {
	case op.target != "nix" && op.target != "containers":
		return session.Usagef("snapshot: --target %q: want nix or containers", op.target)
	case op.method != "auto" && op.method != "file" && op.method != string(disks.InDisk):
		return session.Usagef("snapshot: --method %q: want auto, file or in-disk", op.method)
	}
	if err := checkFormat("snapshot", *format); err != nil {
		return err
	}
	e.Log = session.NewLogger(e.Stderr, *debug)
	var err error
	if op.cfg, op.st, op.ws, err = openWorkspace(e, *wsDir); err != nil {
		return err
	}
	op.disk, op.dir = op.ws.NixDisk(), op.ws.Snapshots(op.target)
	if op.target == "containers" {
		op.disk = op.ws.ContainersDisk()
	}
	switch op.verb {
	case "list":
		return listSnapshots(e, op.dir, *format)
	case "save", "restore", "rm":
	default:
		return session.Usagef("snapshot %q: want save, list, restore or rm", op.verb)
	}
	if op.name == "" && op.verb != "save" {
		return session.Usagef("snapshot %s: name the snapshot (see snapshot list)", op.verb)
	}
	if op.name == "" {
		op.name = time.Now().UTC().Format("20060102-150405")
	}
	if err := disks.CheckSnapshotName(op.name); err != nil {
		return session.Usagef("snapshot %s: %v", op.verb, err)
	}
	if _, err := os.Lstat(op.disk); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("snapshot %s: workspace %s has no %s disk yet (it is made on the first run)", op.verb, op.ws.Source, op.target)
	}
	return op.locked()
}

// locked does a save, restore or rm under the workspace lock, taken
// exclusively: a VM using the disk holds it, and the refusal names it.
func (op *snapshotOp) locked() error {
	// Rootless, the maintenance VM runs in the keep-id namespace like a
	// session's (virtiofsd needs its capabilities there).
	if err := session.EnterUserNamespace(op.e.IO, op.cfg); err != nil {
		return session.ExitError{Status: session.ExitSetup, Err: err}
	}
	lock, err := disks.Lock(op.ws.Lock(), true)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", op.verb, err)
	}
	defer lock.Close()
	have := disks.HasSnapshot(op.dir, op.name)
	switch {
	case op.verb == "save" && have != "":
		return fmt.Errorf("snapshot save %s: it exists (pick another name, or remove it with snapshot rm)", op.name)
	case op.verb != "save" && have == "":
		return fmt.Errorf("snapshot %s %s: %w (list them with snapshot list)", op.verb, op.name, disks.ErrNoSnapshot)
	}
	inDisk := have == string(disks.InDisk) ||
		(op.verb == "save" && (op.method == string(disks.InDisk) || (op.method == "auto" && !disks.CanReflink(op.dir))))
	if inDisk {
		return op.inDisk()
	}
	var how disks.SnapshotMethod
	switch op.verb {
	case "save":
		how, err = disks.SaveSnapshot(op.disk, op.dir, op.name)
	case "restore":
		how, err = disks.RestoreSnapshot(op.disk, op.dir, op.name)
	case "rm":
		return disks.RemoveSnapshot(op.dir, op.name)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(op.e.Stdout, "%s %s snapshot %s (%s)\n", pastTense(op.verb), op.target, op.name, how)
	return nil
}

func pastTense(verb string) string {
	return map[string]string{"save": "saved", "restore": "restored", "rm": "removed"}[verb]
}

// inDisk has a maintenance VM do the verb inside the disk, and records
// the snapshot on the host so that list needs no VM.
func (op *snapshotOp) inDisk() error {
	vmm, err := launch.ParseVMM(op.vmm)
	if err != nil {
		return session.Usagef("snapshot: --vmm %v", err)
	}
	if op.vmm == "" {
		vmm, _ = launch.ParseVMM(op.cfg.VM.VMM) // checked when the config was read
	}
	id := contract.NixDiskID
	if op.target == "containers" {
		id = contract.ContainersDiskID
	}
	m := session.Maintenance{Disk: launch.Disk{ID: id, Path: op.disk}, VMM: vmm, GuestInit: op.guestInit, Debug: op.debug}
	if m.GuestInit == "" {
		m.GuestInit = op.cfg.Guest.Init
	}
	uid, gid := session.UserIDs(-1, -1)
	m.Guest = contract.Guest{Mode: contract.ModeSnapshot, UID: uid, GID: gid, User: contract.DefaultUser,
		ResizeDisk: id, SnapshotOp: op.verb, SnapshotName: op.name}
	status, err := session.RunMaintenance(op.e.IO, op.st, m)
	if err == nil && status != 0 {
		err = fmt.Errorf("the maintenance VM ended with status %d", status)
	}
	if err != nil {
		return session.ExitError{Status: session.ExitFail, Err: fmt.Errorf("snapshot %s %s in the %s disk: %w", op.verb, op.name, op.target, err)}
	}
	if op.verb != "restore" {
		if err := disks.MarkInDisk(op.dir, op.name, op.verb == "save"); err != nil {
			return fmt.Errorf("snapshot %s %s: done in the disk, but not recorded: %w", op.verb, op.name, err)
		}
	}
	fmt.Fprintf(op.e.Stdout, "%s %s snapshot %s (%s)\n", pastTense(op.verb), op.target, op.name, disks.InDisk)
	return nil
}

func listSnapshots(e *env, dir, format string) error {
	list, err := disks.ListSnapshots(dir)
	if err != nil {
		return err
	}
	if format == "json" {
		if list == nil {
			list = []disks.SnapshotInfo{}
		}
		return writeJSON(e.Stdout, list)
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tCREATED\tUSED")
	for _, s := range list {
		used := "-"
		if s.Kind == "file" {
			used = humanSize(s.Used)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Kind, s.Created.Local().Format(time.DateTime), used)
	}
	return tw.Flush()
}

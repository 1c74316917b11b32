package host

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/loftd/loftd/disks"
	"github.com/loftd/loftd/host/session"
)

// runSnapshot saves, lists, restores and removes copies of one workspace
// disk (disks.SaveSnapshot: a reflink, else a sparse copy; the guest's
// filesystem is never mounted on the host). save and restore hold the
// workspace lock exclusively, so neither runs while a VM uses the disk.
func runSnapshot(e *env, args []string) error {
	fs := e.newFlagSet("snapshot", e.Prog+" snapshot save|list|restore|rm --target nix|containers [NAME] [--workspace DIR]")
	target := fs.String("target", "nix", "disk: nix or containers")
	wsDir := workspaceFlag(fs)
	format := formatFlag(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 || len(rest) > 2 {
		return session.Usagef("snapshot: want save|list|restore|rm [NAME]")
	}
	verb, name := rest[0], ""
	if len(rest) == 2 {
		name = rest[1]
	}
	if *target != "nix" && *target != "containers" {
		return session.Usagef("snapshot: --target %q: want nix or containers", *target)
	}
	if err := checkFormat("snapshot", *format); err != nil {
		return err
	}
	_, _, ws, err := openWorkspace(e, *wsDir)
	if err != nil {
		return err
	}
	disk, dir := ws.NixDisk(), ws.Snapshots(*target)
	if *target == "containers" {
		disk = ws.ContainersDisk()
	}
	switch verb {
	case "list":
		return listSnapshots(e, dir, *format)
	case "rm":
		if name == "" {
			return session.Usagef("snapshot rm: name the snapshot (see snapshot list)")
		}
		return disks.RemoveSnapshot(dir, name)
	case "save", "restore":
	default:
		return session.Usagef("snapshot %q: want save, list, restore or rm", verb)
	}
	if _, err := os.Lstat(disk); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("snapshot %s: workspace %s has no %s disk yet (it is made on the first run)", verb, ws.Source, *target)
	}
	return copySnapshot(e, verb, *target, name, disk, dir, ws.Lock())
}

// copySnapshot saves or restores under the workspace lock, taken
// exclusively: a VM using the disk holds it, and the refusal names it.
func copySnapshot(e *env, verb, target, name, disk, dir, lockPath string) error {
	lock, err := disks.Lock(lockPath, true)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", verb, err)
	}
	defer lock.Close()
	if verb == "save" {
		if name == "" {
			name = time.Now().UTC().Format("20060102-150405")
		}
		how, err := disks.SaveSnapshot(disk, dir, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "saved %s snapshot %s (%s)\n", target, name, how)
		return nil
	}
	if name == "" {
		return session.Usagef("snapshot restore: name the snapshot (see snapshot list)")
	}
	how, err := disks.RestoreSnapshot(disk, dir, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "restored %s snapshot %s (%s)\n", target, name, how)
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
	fmt.Fprintln(tw, "NAME\tCREATED\tUSED")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Created.Local().Format(time.DateTime), humanSize(s.Used))
	}
	return tw.Flush()
}

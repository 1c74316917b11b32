package host

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// runPs lists the live tasks: those whose lock a loftd holds.
func runPs(e *env, args []string) error {
	fs := e.newFlagSet("ps", e.prog+" ps [--format table|json]")
	format := formatFlag(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := checkFormat("ps", *format); err != nil {
		return err
	}
	_, st, err := e.stateInNamespace()
	if err != nil {
		return err
	}
	tasks, err := st.ListTasks()
	if err != nil {
		return err
	}
	live := []taskJSON{}
	for _, t := range tasks {
		if !t.Alive || t.Claiming {
			continue
		}
		j := taskJSON{ID: t.ID, PID: t.PID, Started: t.Started}
		if t.Plan != nil {
			j.VMM = t.Plan.VMM
			if len(t.Plan.Shares) > 0 {
				j.Workspace = t.Plan.Shares[0].Path
			}
		}
		live = append(live, j)
	}
	return printTasks(e.stdout, *format, live)
}

func printTasks(w io.Writer, format string, tasks []taskJSON) error {
	if format == "json" {
		return writeJSON(w, tasks)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tPID\tSTARTED\tVMM\tWORKSPACE")
	for _, t := range tasks {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", t.ID, t.PID, t.Started.Local().Format(time.DateTime), orDash(t.VMM), orDash(t.Workspace))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// runGC removes the dead tasks, kept ones included (only an explicit gc
// removes those), then tidies the image store.
func runGC(e *env, args []string) error {
	fs := e.newFlagSet("gc", e.prog+" gc [--images [--older-than AGE | --all]]")
	images := fs.Bool("images", false, "also remove cached images no running task uses and none used for --older-than")
	olderThan := fs.String("older-than", "7d", "with --images: remove images last used longer ago than this (7d, 36h, 0 for all)")
	all := fs.Bool("all", false, "with --images: remove every image no running task uses, however recently used")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	var g *imageGC
	if *images || *all || fs.Changed("older-than") {
		age, err := parseAge(*olderThan)
		if err != nil {
			return usagef("gc: --older-than %v", err)
		}
		g = &imageGC{all: *all, cutoff: time.Now().Add(-age)}
	}
	cfg, st, err := e.stateInNamespace()
	if err != nil {
		return err
	}
	removed, err := st.Collect(true)
	for _, t := range removed {
		what := "stale"
		if t.Kept {
			what = "kept"
		}
		fmt.Fprintf(e.stdout, "removed %s task %s\n", what, t.ID)
	}
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	return e.gcStore(cfg, st, g)
}

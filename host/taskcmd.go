package host

import (
	"fmt"
	"text/tabwriter"
	"time"
)

// runPs lists the live tasks: those whose lock a loftd holds.
func runPs(e *env, args []string) error {
	fs := e.newFlagSet("ps", e.prog+" ps")
	if err := e.parse(fs, args); err != nil {
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
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tPID\tSTARTED\tVMM\tWORKSPACE")
	for _, t := range tasks {
		if !t.Alive || t.Claiming {
			continue
		}
		vmm, ws := "-", "-"
		if t.Plan != nil {
			vmm = t.Plan.VMM
			if len(t.Plan.Shares) > 0 {
				ws = t.Plan.Shares[0].Path
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", t.ID, t.PID, t.Started.Format(time.DateTime), vmm, ws)
	}
	return tw.Flush()
}

// runGC removes the dead tasks, kept ones included (only an explicit gc
// removes those), then tidies the image store.
func runGC(e *env, args []string) error {
	fs := e.newFlagSet("gc", e.prog+" gc [--images]")
	images := fs.Bool("images", false, "also remove cached images no task uses")
	if err := e.parse(fs, args); err != nil {
		return err
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
	return e.gcStore(cfg, st, *images)
}

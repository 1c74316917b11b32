package host

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/helper/live"
	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/internal/vmmproc"
)

// runPs lists the live tasks: those whose lock a loftd holds.
func runPs(e *env, args []string) error {
	fs := e.newFlagSet("ps", e.Prog+" ps [--format table|json] [--debug]")
	format := formatFlag(fs)
	debug := fs.Bool("debug", false, "also list each VMM process (helper, QEMU, virtiofsd, passt) with its uid, no_new_privs, seccomp and Landlock")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := checkFormat("ps", *format); err != nil {
		return err
	}
	_, st, err := session.StateInNamespace(e.IO)
	if err != nil {
		return err
	}
	tasks, err := st.ListTasks()
	if err != nil {
		return err
	}
	vms, _ := st.ListLive()
	rows := withSessions(liveTasks(tasks, "/proc", *debug), tasks, vms, time.Now())
	reviewWorkspaces(st, rows)
	if err := printTasks(e.Stdout, *format, rows); err != nil {
		return err
	}
	if *debug && *format != "json" {
		return printVMMProcs(e.Stdout, rows)
	}
	return nil
}

// withSessions adds to each task that runs a workspace VM its uptime, mode
// and the sessions its guest reports (asked through its control socket).
func withSessions(out []taskJSON, tasks []state.TaskInfo, vms []state.LiveVM, now time.Time) []taskJSON {
	dirs := map[string]string{}
	for _, t := range tasks {
		dirs[t.ID] = t.Dir
	}
	for i := range out {
		out[i].Sessions = []contract.LiveSession{}
		for _, v := range vms {
			if v.Task != dirs[out[i].ID] {
				continue
			}
			out[i].Live, out[i].Detached = true, v.Detached
			out[i].Uptime = now.Sub(v.Started).Seconds()
			if rep, err := live.Ask(v.Task, live.Request{Op: live.OpSessions}); err == nil {
				out[i].Sessions = rep.Sessions
			}
		}
	}
	return out
}

// liveTasks describes the running tasks, with the host memory each VM's
// process holds now (its RSS; 0 while no VM runs yet or when /proc hides
// it). With free page reporting that is what the guest uses, not --mem.
// With debug, each task also lists its VMM processes' confinement.
func liveTasks(tasks []state.TaskInfo, procRoot string, debug bool) []taskJSON {
	procs, _ := vmmproc.Table(procRoot)
	live := []taskJSON{}
	for _, t := range tasks {
		if !t.Alive || t.Claiming {
			continue
		}
		j := taskJSON{ID: t.ID, PID: t.PID, Started: t.Started}
		if pid := vmmproc.VMM(procs, t.PID); t.PID > 0 && pid > 0 {
			j.RSS, _ = vmmproc.RSS(procRoot, pid)
		}
		if debug && t.PID > 0 {
			j.Procs = vmmProcs(procRoot, procs, t.PID, t.Dir)
		}
		if t.Plan != nil {
			j.VMM = t.Plan.VMM.String()
			if len(t.Plan.Shares) > 0 {
				j.Workspace = t.Plan.Shares[0].Path
			}
		}
		live = append(live, j)
	}
	return live
}

func printTasks(w io.Writer, format string, tasks []taskJSON) error {
	if format == "json" {
		return writeJSON(w, tasks)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tPID\tSTARTED\tUPTIME\tVMM\tRSS\tWORKSPACE")
	for _, t := range tasks {
		up := "-"
		if t.Live {
			up = (time.Duration(t.Uptime) * time.Second).String()
			if t.Detached {
				up += " (detached)"
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.PID, t.Started.Local().Format(time.DateTime), up, orDash(t.VMM), rssText(t.RSS), orDash(t.Workspace))
		for _, s := range t.Sessions {
			tty := "-"
			if s.TTY {
				tty = "tty"
			}
			fmt.Fprintf(tw, "  session %s\t%s\t%s\t%s %s\t%s\n", s.ID, s.Kind, s.Started.Local().Format(time.DateTime), s.User, tty, orDash(strings.Join(s.Command, " ")))
		}
	}
	return tw.Flush()
}

// reviewWorkspaces names the workspace of a review run, whose plan shares
// the run's overlay (STATE/reviews/<id>/merged) rather than the workspace.
func reviewWorkspaces(st state.State, tasks []taskJSON) {
	for i, t := range tasks {
		if t.Workspace != (state.Review{ID: t.ID, Dir: filepath.Join(st.Reviews(), t.ID)}).Merged() {
			continue
		}
		if _, rec, err := st.Review(t.ID); err == nil {
			tasks[i].Workspace = rec.Workspace
		}
	}
}

// rssText prints a resident set in MiB (GiB from 10 GiB), "-" when unknown.
func rssText(b int64) string {
	switch {
	case b <= 0:
		return "-"
	case b >= 10<<30:
		return fmt.Sprintf("%.1fG", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%dM", (b+1<<19)>>20)
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
	fs := e.newFlagSet("gc", e.Prog+" gc [--images] [--reviews] [--older-than AGE | --all]")
	images := fs.Bool("images", false, "also remove cached images no running task uses and none used for --older-than")
	reviews := fs.Bool("reviews", false, "also remove pending review runs that ended longer ago than --older-than (--all: every pending one);\ndiscarded and applied runs are always removed")
	olderThan := fs.String("older-than", "7d", "with --images: remove images last used longer ago than this (7d, 36h, 0 for all)")
	all := fs.Bool("all", false, "with --images: remove every image no running task uses, however recently used")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	var g *imageGC
	if *images || *all || fs.Changed("older-than") {
		age, err := parseAge(*olderThan)
		if err != nil {
			return session.Usagef("gc: --older-than %v", err)
		}
		g = &imageGC{all: *all, cutoff: time.Now().Add(-age)}
	}
	cfg, st, err := session.StateInNamespace(e.IO)
	if err != nil {
		return err
	}
	removed, err := st.Collect(true)
	for _, t := range removed {
		what := "stale"
		if t.Kept {
			what = "kept"
		}
		fmt.Fprintf(e.Stdout, "removed %s task %s\n", what, t.ID)
	}
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	if err := gcReviews(e, st, *reviews, *all, *olderThan); err != nil {
		return err
	}
	return gcStore(e, cfg, st, g)
}

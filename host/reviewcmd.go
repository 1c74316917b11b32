package host

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/review"
)

// runReviews lists the review runs with their state.
func runReviews(e *env, args []string) error {
	fs := e.newFlagSet("reviews", e.Prog+" reviews [--format table|json]")
	format := formatFlag(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := checkFormat("reviews", *format); err != nil {
		return err
	}
	_, st, err := session.StateInNamespace(e.IO)
	if err != nil {
		return err
	}
	recs, err := st.ListReviews()
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []state.ReviewRecord{}
	}
	if *format == "json" {
		return writeJSON(e.Stdout, recs)
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATE\tSTARTED\tWORKSPACE\tCOMMAND")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Started.Local().Format(time.DateTime), review.Show(r.Workspace), orDash(review.Show(strings.Join(r.Command, " "))))
	}
	return tw.Flush()
}

// openReview finds the run id, or with none the newest pending run of the
// workspace around the current directory.
func openReview(e *env, id string) (state.Review, state.ReviewRecord, error) {
	_, st, err := session.StateInNamespace(e.IO)
	if err != nil {
		return state.Review{}, state.ReviewRecord{}, err
	}
	if id != "" {
		return st.Review(id)
	}
	ws, err := state.FindWorkspace(".")
	if err != nil {
		return state.Review{}, state.ReviewRecord{}, err
	}
	recs, err := st.ListReviews()
	if err != nil {
		return state.Review{}, state.ReviewRecord{}, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Workspace == ws && recs[i].State == state.ReviewPending {
			return st.Review(recs[i].ID)
		}
	}
	return state.Review{}, state.ReviewRecord{}, session.Usagef("no pending review run of %s (list them with '%s reviews', or name one)", ws, e.Prog)
}

// reviewLayers reads a pending run's layer against its workspace. A running
// run's layer is still being written, and a discarded one is gone.
func reviewLayers(r state.Review, rec state.ReviewRecord) (review.Layers, error) {
	switch rec.State {
	case state.ReviewRunning:
		return review.Layers{}, fmt.Errorf("review %s is still running: wait for its VM to end", rec.ID)
	case state.ReviewDiscarded:
		return review.Layers{}, fmt.Errorf("review %s was discarded", rec.ID)
	}
	x := review.TrustedXattrs
	if rec.UserXattrs {
		x = review.UserXattrs
	}
	return review.Layers{Upper: r.Upper(), Workspace: rec.Workspace, Xattrs: x}, nil
}

func oneRun(cmd string, rest []string) (string, error) {
	if len(rest) > 1 {
		return "", session.Usagef("%s: want at most one RUN, got %d", cmd, len(rest))
	}
	if len(rest) == 1 {
		return rest[0], nil
	}
	return "", nil
}

// runDiff prints a run's changes: one line each, those that run code on
// the host first, then the unified diffs of the text files.
func runDiff(e *env, args []string) error {
	fs := e.newFlagSet("diff", e.Prog+" diff [RUN] [--format table|json]")
	format := formatFlag(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := checkFormat("diff", *format); err != nil {
		return err
	}
	id, err := oneRun("diff", fs.Args())
	if err != nil {
		return err
	}
	r, rec, err := openReview(e, id)
	if err != nil {
		return err
	}
	l, err := reviewLayers(r, rec)
	if err != nil {
		return err
	}
	changes, err := review.Scan(l)
	if err != nil {
		return fmt.Errorf("diff %s: %w", rec.ID, err)
	}
	if *format == "json" {
		if changes == nil {
			changes = []review.Change{}
		}
		return writeJSON(e.Stdout, changes)
	}
	if len(changes) == 0 {
		fmt.Fprintf(e.Stderr, "%s: review %s: no changes\n", e.Prog, rec.ID)
		return nil
	}
	return review.Diff(e.Stdout, l, changes)
}

// runApply applies a run's changes, all or the named paths. A file the
// host changed since the run started is a conflict and stays as it is.
func runApply(e *env, args []string) error {
	fs := e.newFlagSet("apply", e.Prog+" apply [RUN] [PATH…] [--format table|json]")
	format := formatFlag(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := checkFormat("apply", *format); err != nil {
		return err
	}
	var id string
	paths := fs.Args()
	// RUN is optional: a first argument that names a run is one.
	if len(paths) > 0 {
		if _, st, err := session.StateInNamespace(e.IO); err == nil {
			if _, _, err := st.Review(paths[0]); err == nil {
				id, paths = paths[0], paths[1:]
			}
		}
	}
	r, rec, err := openReview(e, id)
	if err != nil {
		return err
	}
	l, err := reviewLayers(r, rec)
	if err != nil {
		return err
	}
	out, err := review.Apply(review.Request{Layers: l, Since: rec.Since, Paths: paths})
	if errors.Is(err, review.ErrNoSuchPath) {
		return session.Usagef("apply %s: %v (see them with '%s diff %s')", rec.ID, err, e.Prog, rec.ID)
	}
	if err != nil {
		return fmt.Errorf("apply %s: %w", rec.ID, err)
	}
	if left, err := review.Scan(l); err == nil && len(left) == 0 {
		rec.State = state.ReviewApplied
		if err := r.Save(rec); err != nil {
			return err
		}
	}
	if *format == "json" {
		err = writeJSON(e.Stdout, out)
	} else {
		printOutcome(e.Stdout, out)
	}
	if err == nil && (len(out.Conflicts) > 0 || len(out.Failed) > 0) {
		return session.ExitError{Status: session.ExitFail, Err: fmt.Errorf("apply %s: %d conflicts, %d failed; the rest is applied", rec.ID, len(out.Conflicts), len(out.Failed))}
	}
	return err
}

func printOutcome(w io.Writer, out review.Outcome) {
	for _, c := range out.Applied {
		fmt.Fprintf(w, "applied   %s %s\n", c.Kind, review.Show(c.Path))
	}
	for _, p := range out.Conflicts {
		fmt.Fprintf(w, "conflict  %s %s: %s\n", p.Kind, review.Show(p.Path), p.Reason)
	}
	for _, p := range out.Failed {
		fmt.Fprintf(w, "failed    %s %s: %s\n", p.Kind, review.Show(p.Path), p.Reason)
	}
	for _, c := range out.Skipped {
		fmt.Fprintf(w, "skipped   %s %s: %s\n", c.Kind, review.Show(c.Path), c.Note)
	}
}

// runDiscard drops a run's layer; gc removes its record.
func runDiscard(e *env, args []string) error {
	fs := e.newFlagSet("discard", e.Prog+" discard [RUN]")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	id, err := oneRun("discard", fs.Args())
	if err != nil {
		return err
	}
	r, rec, err := openReview(e, id)
	if err != nil {
		return err
	}
	if rec.State == state.ReviewRunning {
		return fmt.Errorf("review %s is still running: stop its VM first", rec.ID)
	}
	if err := r.DropLayer(); err != nil {
		return err
	}
	rec.State = state.ReviewDiscarded
	if err := r.Save(rec); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "discarded review %s\n", rec.ID)
	return nil
}

// gcReviews removes the discarded and applied review runs, and with
// --reviews the pending ones that ended before --older-than (all of them
// with --all), by the images' rules. A running one is never removed.
func gcReviews(e *env, st state.State, pending, all bool, olderThan string) error {
	var cutoff time.Time
	if pending {
		age, err := parseAge(olderThan)
		if err != nil {
			return session.Usagef("gc: --older-than %v", err)
		}
		cutoff = time.Now().Add(-age)
		if all {
			cutoff = time.Now().Add(time.Hour)
		}
	}
	removed, err := st.CollectReviews(cutoff)
	for _, r := range removed {
		fmt.Fprintf(e.Stdout, "removed %s review run %s\n", r.State, r.ID)
	}
	if err != nil {
		return fmt.Errorf("gc reviews: %w", err)
	}
	return nil
}

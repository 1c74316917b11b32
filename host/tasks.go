package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loftd/loftd/launch"
	"golang.org/x/sys/unix"
)

// taskInfo is what ps and gc know of one task directory.
type taskInfo struct {
	ID, Dir string
	PID     int
	Alive   bool
	Started time.Time
	Plan    *launch.Plan // nil before the plan was written
}

func (st State) listTasks() ([]taskInfo, error) {
	entries, err := os.ReadDir(st.Tasks())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	var out []taskInfo
	for _, ent := range entries {
		if !ent.IsDir() {
			continue
		}
		t := taskInfo{ID: ent.Name(), Dir: filepath.Join(st.Tasks(), ent.Name())}
		if data, err := os.ReadFile(filepath.Join(t.Dir, "pid")); err == nil {
			t.PID, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		t.Alive = pidAlive(t.PID)
		if fi, err := ent.Info(); err == nil {
			t.Started = fi.ModTime()
		}
		t.Plan, _ = launch.Read(t.Dir)
		out = append(out, t)
	}
	return out, nil
}

// pidAlive: a task whose loftd is gone (crash, SIGKILL) is stale.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// collectStale removes the directories of tasks whose loftd is gone and
// returns what it removed.
func (e *env) collectStale(st State) ([]string, error) {
	tasks, err := st.listTasks()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, t := range tasks {
		if t.Alive {
			continue
		}
		if err := removeTaskDir(t.Dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, t.ID)
	}
	return removed, errors.Join(errs...)
}

func runPs(e *env, args []string) error {
	fs := e.newFlagSet("ps", e.prog+" ps")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	_, st, err := e.stateInNamespace()
	if err != nil {
		return err
	}
	tasks, err := st.listTasks()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tPID\tSTARTED\tVMM\tWORKSPACE")
	for _, t := range tasks {
		if !t.Alive {
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
	removed, err := e.collectStale(st)
	for _, id := range removed {
		fmt.Fprintf(e.stdout, "removed stale task %s\n", id)
	}
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	return e.gcStore(cfg, st, *images)
}

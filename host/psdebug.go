package host

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/loftd/loftd/helper"
	"github.com/loftd/loftd/internal/confine"
	"github.com/loftd/loftd/internal/vmmproc"
)

// vmmProcJSON is one VMM process of a task in `loftd ps --debug`: how it
// is confined, read from /proc (uid, no_new_privs, seccomp) and from the
// task's record (Landlock, which /proc does not show).
type vmmProcJSON struct {
	PID        int    `json:"pid"`
	Role       string `json:"role"`
	UID        int    `json:"uid"`
	NoNewPrivs bool   `json:"no_new_privs"`
	Seccomp    int    `json:"seccomp"` // 0 none, 1 strict, 2 filter
	Landlock   string `json:"landlock"`
}

// vmmProcs lists the VMM processes below the task's loftd.
func vmmProcs(procRoot string, procs []vmmproc.Proc, loftdPID int, taskDir string) []vmmProcJSON {
	rec := readRecord(taskDir)
	var out []vmmProcJSON
	for _, p := range vmmproc.Descendants(procs, loftdPID) {
		role := vmmproc.Role(p)
		if role == "" {
			continue
		}
		st, err := confine.ReadStatus(procRoot, p.PID)
		if err != nil {
			continue // it ended
		}
		out = append(out, vmmProcJSON{PID: p.PID, Role: role, UID: st.UID, NoNewPrivs: st.NoNewPrivs,
			Seccomp: st.Seccomp, Landlock: landlockOf(role, rec)})
	}
	return out
}

// landlockOf says whether role runs under Landlock, as the helper recorded.
func landlockOf(role string, rec *helper.Record) string {
	if rec == nil {
		return "unknown"
	}
	on := false
	switch role {
	case "helper":
		on = rec.Helper.Landlock
	case "qemu":
		on = strings.Contains(rec.Others["qemu"], "landlock")
	}
	if !on {
		return "no"
	}
	return fmt.Sprintf("abi %d", rec.Helper.LandlockABI)
}

func readRecord(taskDir string) *helper.Record {
	data, err := os.ReadFile(filepath.Join(taskDir, helper.RecordName))
	if err != nil {
		return nil
	}
	var rec helper.Record
	if json.Unmarshal(data, &rec) != nil {
		return nil
	}
	return &rec
}

// printVMMProcs is the --debug table below the task list.
func printVMMProcs(w io.Writer, tasks []taskJSON) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTASK\tPID\tROLE\tUID\tNONEWPRIVS\tSECCOMP\tLANDLOCK")
	for _, t := range tasks {
		for _, p := range t.Procs {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%v\t%s\t%s\n", t.ID, p.PID, p.Role, p.UID, p.NoNewPrivs, seccompText(p.Seccomp), p.Landlock)
		}
	}
	return tw.Flush()
}

func seccompText(mode int) string {
	switch mode {
	case 0:
		return "none"
	case 1:
		return "strict"
	case 2:
		return "filter"
	}
	return fmt.Sprint(mode)
}

package host

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/host/session"
	"github.com/spf13/pflag"
)

// The JSON that `images`, `ps` and `doctor` print with --format json. These
// structs are the documented schema (docs/json.md); TestJSONSchema pins
// their field names, so a change here is a visible, deliberate one. Fields
// are only ever added.

// imageJSON is one element of `loftd images --format json`.
type imageJSON struct {
	Refs     []string  `json:"refs"`
	Digest   string    `json:"digest"`
	ID       string    `json:"id"`
	Size     int64     `json:"size"`
	Pulled   time.Time `json:"pulled"`
	LastUsed time.Time `json:"last_used"`
}

// taskJSON is one element of `loftd ps --format json`.
type taskJSON struct {
	ID        string    `json:"id"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	VMM       string    `json:"vmm"`
	Workspace string    `json:"workspace"`
	// RSS is the host memory the VM's process holds now, in bytes (0
	// before the VM runs, or when its process cannot be read).
	RSS int64 `json:"rss"`
	// A workspace VM that can be joined (issue 19): how long it has run,
	// whether it outlives its sessions (-d), and its live sessions.
	Live     bool                   `json:"live"`
	Detached bool                   `json:"detached"`
	Uptime   float64                `json:"uptime_seconds"`
	Sessions []contract.LiveSession `json:"sessions"`
	// Procs, with --debug, are the VMM processes and their confinement.
	Procs []vmmProcJSON `json:"vmm_processes,omitempty"`
}

// doctorJSON is `loftd doctor --format json`.
type doctorJSON struct {
	Checks []checkJSON `json:"checks"`
	// Backend is the VM backend a session would use: "krun", "qemu", or ""
	// when none can run here (doctor then exits 1).
	Backend string `json:"backend"`
}

type checkJSON struct {
	Name   string `json:"name"`
	Level  string `json:"level"` // ok, warn, fail
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// formatFlag declares --format on a listing command.
func formatFlag(fs *pflag.FlagSet) *string {
	return fs.String("format", "table", "output format: table (for people) or json (for scripts; schema in docs/json.md)")
}

// checkFormat validates a --format value.
func checkFormat(cmd, f string) error {
	if f != "table" && f != "json" {
		return session.Usagef("%s: --format %q: want table or json", cmd, f)
	}
	return nil
}

// writeJSON prints v indented, one document per command.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// humanSize is a size as podman prints it: decimal SI units, three
// significant digits, a space ("457 MB", "1.23 GB"). go-units'
// HumanSizeWithPrecision, which podman uses, prints 999.9 MB as "1e+03MB";
// rounding first and then picking the unit does not.
func humanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	v, i := float64(n), 0
	for i < len(units)-1 {
		r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
		if r < 1000 {
			break
		}
		v /= 1000
		i++
	}
	return strconv.FormatFloat(v, 'g', 3, 64) + " " + units[i]
}

// parseAge parses --older-than: a Go duration ("36h", "90m") or a whole
// number of days ("7d"), which Go's durations lack.
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: want a number of days (7d) or a duration (36h)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a number of days (7d) or a duration (36h)", s)
	}
	return d, nil
}

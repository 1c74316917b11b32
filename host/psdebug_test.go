package host

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/loftd/loftd/helper"
	"github.com/loftd/loftd/host/state"
)

// TestPsDebugConfinement: ps --debug lists each VMM process below a task's
// loftd with its uid, no_new_privs and seccomp from /proc/PID/status and
// Landlock from the task's record; other processes are left out.
func TestPsDebugConfinement(t *testing.T) {
	proc, taskDir := t.TempDir(), t.TempDir()
	for _, p := range []struct {
		pid, ppid     int
		comm, cmdline string
		uid, nnp, sec int
	}{
		{100, 1, "loftd", "loftd\x00--\x00make\x00", 0, 0, 0},
		{101, 100, "loftd", "loftd\x00internal\x00enter\x00/t\x00", 0, 1, 2},
		{102, 101, "16", "/usr/bin/qemu-system-x86_64\x00-accel\x00", 0x70010000, 1, 2},
		{103, 101, "5", "/usr/libexec/virtiofsd\x00--fd=3\x00", 0x70000000, 1, 2},
		{104, 101, "passt.avx2", "/usr/bin/passt\x00-f\x00", 65534, 1, 2},
		{105, 101, "sleep", "sleep\x001\x00", 0, 0, 0},
	} {
		dir := filepath.Join(proc, strconv.Itoa(p.pid))
		files := map[string]string{
			"stat":    fmt.Sprintf("%d (%s) S %d 1 1\n", p.pid, p.comm, p.ppid),
			"cmdline": p.cmdline,
			"status":  fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d\nNoNewPrivs:\t%d\nSeccomp:\t%d\n", p.uid, p.uid, p.uid, p.uid, p.nnp, p.sec),
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	rec := `{"helper": {"mode": "enforce", "landlock_abi": 7, "landlock": true, "seccomp": true, "no_new_privs": true},
		"others": {"qemu": "-sandbox (seccomp), no_new_privs, landlock, uid 1879113728"}}`
	if err := os.WriteFile(filepath.Join(taskDir, helper.RecordName), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	live := liveTasks([]state.TaskInfo{{ID: "a", PID: 100, Alive: true, Dir: taskDir}}, proc, true)
	if len(live) != 1 {
		t.Fatalf("liveTasks = %+v, want one task", live)
	}
	want := []vmmProcJSON{
		{PID: 101, Role: "helper", UID: 0, NoNewPrivs: true, Seccomp: 2, Landlock: "abi 7"},
		{PID: 102, Role: "qemu", UID: 0x70010000, NoNewPrivs: true, Seccomp: 2, Landlock: "abi 7"},
		{PID: 103, Role: "virtiofsd", UID: 0x70000000, NoNewPrivs: true, Seccomp: 2, Landlock: "no"},
		{PID: 104, Role: "passt", UID: 65534, NoNewPrivs: true, Seccomp: 2, Landlock: "no"},
	}
	if got := live[0].Procs; !reflect.DeepEqual(got, want) {
		t.Errorf("ps --debug processes:\n got %+v\nwant %+v", got, want)
	}
	var b strings.Builder
	if err := printVMMProcs(&b, live); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "qemu") || !strings.Contains(b.String(), "filter") {
		t.Errorf("printVMMProcs:\n%s", b.String())
	}
}

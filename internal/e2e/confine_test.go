package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loftd/loftd/helper"
	"github.com/loftd/loftd/internal/confine"
	"github.com/loftd/loftd/internal/vmmproc"
)

// TestVMMConfinement: while a VM runs (loftd as root, the default
// --vmm-sandbox=enforce), QEMU and every virtiofsd run with no_new_privs
// and a seccomp filter, QEMU and the workspace's virtiofsd as non-root
// ids, and the helper (`loftd internal enter`) has confined itself; with
// --vmm-sandbox=off QEMU is root and unfiltered. The network's process,
// the policy network's netstack (the default) or passt, confines itself in
// both (docs/architecture.md, "Confinement"): its filter, no_new_privs and
// nobody's uid show in its status.
func TestVMMConfinement(t *testing.T) {
	for _, tt := range []struct {
		mode     confine.Mode
		confined bool
		network  string // the --network flag; "" the default (egress)
		net      string // its process's role
	}{
		{confine.Enforce, true, "", "netstack"},
		{confine.Off, false, "", "netstack"},
		{confine.Enforce, true, "passt", "passt"},
	} {
		t.Run(string(tt.mode)+"/"+tt.net, func(t *testing.T) {
			w := newWorld(t)
			args := []string{"--vmm-sandbox=" + string(tt.mode)}
			if tt.network != "" {
				args = append(args, "--network", tt.network)
			}
			pid, wait := w.startLong(args...)
			procs, err := vmmproc.Table("/proc")
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, p := range vmmproc.Descendants(procs, pid) {
				kind := procKind(p)
				t.Logf("below loftd: %d %s %q", p.PID, p.Comm, p.Args)
				if kind == "" {
					continue
				}
				seen[kind]++
				st, err := confine.ReadStatus("/proc", p.PID)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s (pid %d, %s): %v", kind, p.PID, p.Comm, st)
				filtered := st.Seccomp == 2 && st.NoNewPrivs
				switch {
				case tt.confined && !filtered:
					t.Errorf("%s (pid %d): %v, want Seccomp 2 and NoNewPrivs 1", kind, p.PID, st)
				case tt.confined && kind != "helper" && kind != "virtiofsd root" && st.UID == 0:
					t.Errorf("%s (pid %d) runs as root (%v)", kind, p.PID, st)
				case kind == tt.net && (!filtered || st.UID == 0):
					// The network's process confines itself whatever the mode.
					t.Errorf("%s (pid %d): %v, want its own seccomp filter, no_new_privs and a non-root uid", kind, p.PID, st)
				case !tt.confined && kind == "qemu" && (filtered || st.UID != 0):
					t.Errorf("qemu with the sandbox off: %v, want root without a filter", st)
				}
			}
			for _, kind := range []string{"helper", "qemu", "virtiofsd root", "virtiofsd share", tt.net} {
				if seen[kind] == 0 {
					t.Errorf("no %s process below loftd (pid %d); saw %v", kind, pid, seen)
				}
			}
			checkPsDebug(t, w, tt.confined, tt.net)
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			wait()
		})
	}
}

// checkPsDebug: `loftd ps --debug --format json` lists the running task's
// VMM processes with what /proc and the task's record say.
func checkPsDebug(t *testing.T, w *world, confined bool, net string) {
	t.Helper()
	c := w.cmd()
	c.Args = []string{bins.loftd, "ps", "--debug", "--format", "json"}
	out, err := c.Output()
	if err != nil {
		t.Fatalf("loftd ps --debug: %v", err)
	}
	var tasks []struct {
		Procs []struct {
			Role     string `json:"role"`
			UID      int    `json:"uid"`
			Seccomp  int    `json:"seccomp"`
			Landlock string `json:"landlock"`
		} `json:"vmm_processes"`
	}
	if err := json.Unmarshal(out, &tasks); err != nil || len(tasks) != 1 {
		t.Fatalf("loftd ps --debug: %v, %s; want one task", err, out)
	}
	roles := map[string]bool{}
	for _, p := range tasks[0].Procs {
		roles[p.Role] = true
		if p.Role == "qemu" && confined && (p.Seccomp != 2 || p.UID == 0 || !strings.HasPrefix(p.Landlock, "abi ")) {
			t.Errorf("ps --debug: qemu %+v, want seccomp 2, a non-root uid and Landlock", p)
		}
		if p.Role == "helper" && confined != strings.HasPrefix(p.Landlock, "abi ") {
			t.Errorf("ps --debug: helper %+v, want Landlock %v", p, confined)
		}
	}
	for _, r := range []string{"helper", "qemu", "virtiofsd", net} {
		if !roles[r] {
			t.Errorf("ps --debug lists no %s: %s", r, out)
		}
	}
}

// procKind names the VMM processes (vmmproc.Role), telling the task
// root's virtiofsd from a share's (--modcaps).
func procKind(p vmmproc.Proc) string {
	role := vmmproc.Role(p)
	if role == "virtiofsd" {
		if strings.Contains(strings.Join(p.Args, " "), "--modcaps") {
			return "virtiofsd share"
		}
		return "virtiofsd root"
	}
	return role
}

// BenchmarkBootConfined alternates `loftd -- true` confined (the default,
// --vmm-sandbox=enforce) and unconfined (off) and reports both and their
// ratio: what the wrappers, Landlock and the filters cost a boot.
func BenchmarkBootConfined(b *testing.B) {
	w := benchWorld(b)
	var tOn, tOff time.Duration
	for b.Loop() {
		for _, mode := range []string{"enforce", "off"} {
			start := time.Now()
			if out, err := w.cmd("--vmm", "qemu", "--vmm-sandbox="+mode, "--", "true").CombinedOutput(); err != nil {
				b.Fatalf("loftd --vmm-sandbox=%s -- true: %v\n%s", mode, err, out)
			}
			if mode == "enforce" {
				tOn += time.Since(start)
			} else {
				tOff += time.Since(start)
			}
		}
	}
	b.ReportMetric(float64(tOn.Milliseconds())/float64(b.N), "ms-confined")
	b.ReportMetric(float64(tOff.Milliseconds())/float64(b.N), "ms-unconfined")
	b.ReportMetric(float64(tOn)/float64(tOff), "ratio")
}

// TestEarlyDeathRebootsConfined: a confined helper cannot start QEMU again
// after the guest kernel died in early boot, so it reports the failure as
// one to retry and loftd starts the helper once more, keeping the first
// boot's logs. The stand-in QEMU (a script Landlock will not let the
// wrapper run: its interpreter is not in QEMU's rules) dies before the
// kernel prints a line, both times.
func TestEarlyDeathRebootsConfined(t *testing.T) {
	w := newWorld(t)
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "qemu-system-x86_64"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := w.cmd("--vmm", "qemu", "--", "true")
	c.Env = append(c.Env, "PATH="+bin+":"+os.Getenv("PATH"), "LOFTD_QEMU_ACCEL=tcg")
	out, _ := c.CombinedOutput()
	if c.ProcessState.ExitCode() != 125 || !strings.Contains(string(out), "booting the VM again") {
		t.Fatalf("loftd with a QEMU that dies at once: status %d, output:\n%s\nwant 125 after booting again", c.ProcessState.ExitCode(), out)
	}
	tasks := w.tasks()
	if len(tasks) != 1 {
		t.Fatalf("task dirs %q, want the failed task kept", tasks)
	}
	for _, name := range []string{"qemu.log.boot1", "qemu.log"} {
		if _, err := os.Stat(filepath.Join(w.state, "loftd", "tasks", tasks[0], name)); err != nil {
			t.Errorf("the logs of both boots: %v", err)
		}
	}
	w.gc("removed kept task " + tasks[0])
}

// TestAuditRunNeedsNothingMore: a run under --vmm-sandbox=audit (the
// workload reads stdin and writes both streams) makes no call outside the
// helper's allow-list: the kernel log has no seccomp record of the helper,
// whose pid the task's confinement record names. This is the check that
// the QEMU path's allow-list is complete, and the workflow of
// `loftd internal seccomp-audit`.
func TestAuditRunNeedsNothingMore(t *testing.T) {
	w := newWorld(t)
	status, stdout, stderr := w.run("in", "--preserve-debug", "--vmm-sandbox=audit", "--", "sh", "-c", "cat; echo err >&2")
	if status != 0 || stdout != "in" {
		t.Fatalf("audit run: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	tasks := w.tasks()
	if len(tasks) != 1 {
		t.Fatalf("task dirs %q, want the kept task", tasks)
	}
	data, err := os.ReadFile(filepath.Join(w.state, "loftd", "tasks", tasks[0], helper.RecordName))
	if err != nil {
		t.Fatal(err)
	}
	var rec helper.Record
	if err := json.Unmarshal(data, &rec); err != nil || rec.PID == 0 || rec.Helper.Mode != confine.Audit || rec.Helper.Landlock {
		t.Fatalf("confinement record %s: %+v, %v; want the helper's pid, audit, no Landlock", data, rec, err)
	}
	ds, err := confine.ReadKmsg()
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, d := range ds {
		if d.PID == rec.PID {
			calls = append(calls, d.Syscall)
		}
	}
	if len(calls) > 0 {
		t.Errorf("the audited helper made calls outside its allow-list (add them to internal/confine/syscalls.go): %q", calls)
	}
	w.gc("removed kept task " + tasks[0])
}

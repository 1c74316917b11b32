package e2e

// The two virtiofsd flavors (issue 25): the Rust one, which loftd prefers
// and the whole suite runs on, and QEMU's C one, which stays a fallback
// that must work too. BenchmarkVirtiofsd compares them in one run:
// go test -tags containers_image_openpgp -run '^$' -bench Virtiofsd -benchtime 3x ./internal/e2e/

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
)

// flavors are the virtiofsd binaries a test runs loftd with.
type flavor struct{ name, path string }

func virtiofsdFlavors(t testing.TB) []flavor {
	return []flavor{{"rust", testenv.RequireRustVirtiofsd(t)}, {"c", testenv.RequireCVirtiofsd(t)}}
}

// withVirtiofsd makes c use the virtiofsd at path.
func withVirtiofsd(c *exec.Cmd, path string) *exec.Cmd {
	c.Env = append(c.Env, "LOFTD_VIRTIOFSD="+path)
	return c
}

// TestSuiteVirtiofsdIsRust: the loftd the suite runs, with no override,
// serves its shares with the Rust virtiofsd (the one make deps builds),
// and doctor says so.
func TestSuiteVirtiofsdIsRust(t *testing.T) {
	w := newWorld(t)
	rust := testenv.RequireRustVirtiofsd(t)
	c := exec.Command(bins.loftd, "doctor", "--format", "json")
	c.Env = w.cmd().Env
	out, err := c.Output()
	if err != nil && c.ProcessState == nil {
		t.Fatal(err)
	}
	var doc struct {
		Checks []struct{ Name, Level, Detail string } `json:"checks"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("doctor --format json: %v\n%s", err, out)
	}
	for _, ch := range doc.Checks {
		if ch.Name != "virtiofsd" {
			continue
		}
		if ch.Level != "ok" || !strings.HasPrefix(ch.Detail, rust+" ") || !strings.Contains(ch.Detail, "the Rust virtiofsd") {
			t.Errorf("doctor's virtiofsd check = %+v, want ok naming the Rust virtiofsd %s", ch, rust)
		}
		return
	}
	t.Errorf("doctor printed no virtiofsd check:\n%s", out)
}

// TestVirtiofsdFlavors: a session works with either flavor: the workspace
// is read and written through it, and --debug names the one used.
func TestVirtiofsdFlavors(t *testing.T) {
	w := newWorld(t)
	if err := os.WriteFile(filepath.Join(w.workspace, "in"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range virtiofsdFlavors(t) {
		t.Run(f.name, func(t *testing.T) {
			c := withVirtiofsd(w.cmd("--debug", "--", "sh", "-c", "cat /workspace/in; echo "+f.name+" >/workspace/out-"+f.name), f.path)
			var stdout, stderr strings.Builder
			c.Stdout, c.Stderr = &stdout, &stderr
			if err := c.Run(); err != nil {
				t.Fatalf("loftd with %s: %v\n%s", f.path, err, stderr.String())
			}
			if stdout.String() != "from the host\n" {
				t.Errorf("stdout = %q, want the host's file", stdout.String())
			}
			got, err := os.ReadFile(filepath.Join(w.workspace, "out-"+f.name))
			if err != nil || string(got) != f.name+"\n" {
				t.Errorf("host file written by the guest = %q, %v; want %q", got, err, f.name+"\n")
			}
			if !strings.Contains(stderr.String(), `msg="virtiofsd start"`) || !strings.Contains(stderr.String(), f.path) {
				t.Errorf("--debug does not name virtiofsd %s:\n%s", f.path, stderr.String())
			}
		})
	}
}

// BenchmarkVirtiofsd: boot (`-- true`), stdio (100 MiB to stdout) and the
// workspace script, with the Rust virtiofsd and with the C one, in one run;
// the ratios are rust/c (below 1: the Rust one is faster).
func BenchmarkVirtiofsd(b *testing.B) {
	w := benchWorld(b)
	if err := os.Chown(w.workspace, guestUID, guestUID); err != nil {
		b.Fatal(err)
	}
	fl := virtiofsdFlavors(b)
	timed := func(c *exec.Cmd) float64 {
		start := time.Now()
		if out, err := c.Output(); err != nil {
			b.Fatalf("%q: %v\n%.2000s%s", c.Args, err, out, stderrOf(err))
		}
		return time.Since(start).Seconds()
	}
	var boot, stdio [2]float64
	var ws [2][4]float64
	round := 0
	for b.Loop() {
		// Alternate which flavor goes first: a machine's load drifts.
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		round++
		for _, i := range order {
			f := fl[i]
			boot[i] += timed(withVirtiofsd(w.cmd("--vmm", "qemu", "--", "true"), f.path))
			stdio[i] += timed(withVirtiofsd(w.cmd("--vmm", "qemu", "--", "sh", "-c", gen100MiB), f.path))
			out, err := withVirtiofsd(w.cmd("--vmm", "qemu", "--", "sh", "-c", workspaceScript, "sh", "/workspace/bench"), f.path).Output()
			if err != nil {
				b.Fatalf("workspace script with %s: %v\n%s", f.path, err, stderrOf(err))
			}
			add(b, &ws[i], string(out))
		}
	}
	n := float64(b.N)
	for i, f := range fl {
		b.ReportMetric(boot[i]/n, "s-boot-"+f.name)
		b.ReportMetric(stdio[i]/n, "s-stdio-"+f.name)
	}
	b.ReportMetric(boot[0]/boot[1], "boot-rust/c")
	b.ReportMetric(stdio[0]/stdio[1], "stdio-rust/c")
	for j, name := range []string{"bigwrite", "bigread", "smallwrite", "smallread"} {
		b.ReportMetric(ws[0][j]/max(ws[1][j], 0.01), name+"-rust/c")
	}
}

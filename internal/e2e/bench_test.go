package e2e

import (
	"os/exec"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// benchWorld is newWorld for a benchmark (one world for all iterations).
func benchWorld(b *testing.B) *world {
	b.Helper()
	if bins.err != nil {
		b.Fatal(bins.err)
	}
	testenv.RequireRoot(b)
	testenv.RequireVM(b)
	return &world{state: b.TempDir(), workspace: b.TempDir(), root: testenv.BusyboxRoot(b)}
}

func benchRun(b *testing.B, w *world, args ...string) {
	b.Helper()
	for b.Loop() {
		c := w.cmd(args...)
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("loftd %q: %v\n%s", args, err, out)
		}
	}
}

// BenchmarkLauncherOverhead: flags, disks, task, guest config, plan and the
// helper's spawn and backend preparation, stopping where the VM would boot.
func BenchmarkLauncherOverhead(b *testing.B) {
	w := benchWorld(b)
	benchRun(b, w, "--dry-run", "--vmm", "qemu", "--", "true")
}

// BenchmarkBootTCG: the whole run of `true` in a VM (QEMU TCG here).
func BenchmarkBootTCG(b *testing.B) {
	w := benchWorld(b)
	benchRun(b, w, "--vmm", "qemu", "--", "true")
}

// BenchmarkProcessStart: `loftd version`, the floor of any loftd run.
func BenchmarkProcessStart(b *testing.B) {
	if bins.err != nil {
		b.Fatal(bins.err)
	}
	for b.Loop() {
		if out, err := exec.Command(bins.loftd, "version").CombinedOutput(); err != nil {
			b.Fatalf("loftd version: %v\n%s", err, out)
		}
	}
}

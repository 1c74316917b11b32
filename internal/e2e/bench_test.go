package e2e

import (
	"os"
	"os/exec"
	"testing"
)

// benchWorld is newWorld for a benchmark (one world for all iterations).
func benchWorld(b *testing.B) *world {
	b.Helper()
	if bins.err != nil {
		b.Fatal(bins.err)
	}
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	return &world{state: b.TempDir(), workspace: b.TempDir(), root: busyboxRootB(b)}
}

func busyboxRootB(b *testing.B) string {
	b.Helper()
	root := b.TempDir()
	if out, err := exec.Command("sh", "-c", `set -e; mkdir -p "$1/bin" "$1/proc" "$1/sys" "$1/dev" "$1/tmp" "$1/run" "$1/workspace"; cp /bin/busybox "$1/bin/busybox"; for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$1/bin/$a"; done`, "sh", root).CombinedOutput(); err != nil {
		b.Skipf("busybox root: %v %s", err, out)
	}
	return root
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

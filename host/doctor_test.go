package host

import (
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// TestDoctor runs loftd doctor on this machine: with QEMU and libkrunfw
// present it must name a working backend and exit 0; every check prints.
func TestDoctor(t *testing.T) {
	vm := testenv.RequireVM(t)
	t.Setenv("LOFTD_LIBKRUNFW_LIBRARY", vm.Krunfw)
	c := newCLI(t)
	status, stdout, stderr := c.run("doctor")
	for _, want := range []string{"/dev/kvm", "libkrun", "libkrunfw", "qemu", "state", "image store", "backend: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("loftd doctor does not report %q:\n%s", want, stdout)
		}
	}
	if status != 0 {
		t.Errorf("loftd doctor with QEMU and libkrunfw present: status %d, want 0\n%s%s", status, stdout, stderr)
	}
}

// TestDoctorNoBackend hides libkrunfw and libkrun: no backend can run, and
// doctor must say so with status 1 and print a fix for each failure.
func TestDoctorNoBackend(t *testing.T) {
	t.Setenv("LOFTD_LIBKRUNFW_LIBRARY", "/nonexistent/libkrunfw.so.5")
	t.Setenv("LOFTD_LIBKRUN_LIBRARY", "/nonexistent/libkrun.so.1")
	c := newCLI(t)
	status, stdout, stderr := c.run("doctor")
	if status != 1 || !strings.Contains(stderr, "no VM backend can run here") {
		t.Errorf("loftd doctor without libkrun and libkrunfw: status %d, stderr %q; want 1 and the verdict", status, stderr)
	}
	if !strings.Contains(stdout, "fix: ") || !strings.Contains(stdout, "scripts/fetch-libkrunfw") {
		t.Errorf("loftd doctor prints no fix for libkrunfw:\n%s", stdout)
	}
}

package e2e

import (
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/libkrun"
)

// TestRealLibkrunWithoutKVM: with the real libkrun (make deps builds it
// from the crate registry) on a host whose KVM cannot run libkrun's guest
// (CI's: none, or a PVM /dev/kvm), `--vmm krun` is a setup error naming KVM
// and the fix, never a crash inside libkrun (rootless, where krun may
// serve shares); as root it is refused before that, because libkrun cannot
// id-map shares; and --vmm auto boots with QEMU, saying why.
func TestRealLibkrunWithoutKVM(t *testing.T) {
	lib := testenv.RequireLibkrun(t)
	if libkrun.CheckKVM() == nil {
		testenv.Missing(t, "KVM runs libkrun's guests here: this test is for hosts without it (CI's)")
	}
	rl := newRootlessWorld(t)
	c := rl.cmd("--vmm", "krun", "--", "true")
	c.Env = append(c.Env, "LOFTD_LIBKRUN_LIBRARY="+lib)
	var stderr strings.Builder
	c.Stderr = &stderr
	_ = c.Run()
	if c.ProcessState == nil || c.ProcessState.ExitCode() != 125 || !strings.Contains(stderr.String(), "libkrun needs KVM") || !strings.Contains(stderr.String(), "--vmm qemu") {
		t.Errorf("rootless loftd --vmm krun without KVM: %v, stderr %q; want 125 naming KVM and --vmm qemu", c.ProcessState, stderr.String())
	}

	w := newWorld(t)
	status, _, errb := w.run("", "--vmm", "krun", "--", "true")
	if status != 125 || !strings.Contains(errb, "--vmm krun cannot share the workspace as root") {
		t.Errorf("loftd --vmm krun as root: status %d, stderr %q; want 125 refusing the id-mapped share", status, errb)
	}
	c = rl.cmd("--vmm", "auto", "--debug", "--", "cat", "/marker")
	c.Env = append(c.Env, "LOFTD_LIBKRUN_LIBRARY="+lib)
	var out strings.Builder
	stderr.Reset()
	c.Stdout, c.Stderr = &out, &stderr
	err := c.Run()
	if err != nil || out.String() != "rootless-marker\n" || !strings.Contains(stderr.String(), "backend=qemu") || !strings.Contains(stderr.String(), "libkrun needs KVM") {
		t.Errorf("rootless loftd --vmm auto with libkrun and no KVM: %v, stdout %q; want QEMU, saying why:\n%s", err, out.String(), stderr.String())
	}
}

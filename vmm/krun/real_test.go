package krun

import (
	"os"
	"path/filepath"
	"testing"

	libkrun "github.com/loftd/loftd/krun"
	"github.com/loftd/loftd/launch"
)

// TestRealLibkrunPlan configures a whole plan on the real libkrun named by
// LOFTD_LIBKRUN_LIBRARY, up to (not including) krun_start_enter. Like the
// binding's TestRealLibkrun it skips directly, not through testenv: CI has
// no real libkrun (Debian does not package it; CI boots VMs with QEMU).
func TestRealLibkrunPlan(t *testing.T) {
	if os.Getenv(libkrun.LibraryEnv) == "" {
		t.Skipf("%s is not set: no real libkrun to test against (CI has none; Debian does not package libkrun)", libkrun.LibraryEnv)
	}
	l, err := libkrun.Open("")
	if err != nil {
		t.Fatalf("Open(%q) = %v, want nil", os.Getenv(libkrun.LibraryEnv), err)
	}
	defer l.Close()
	dir := t.TempDir()
	root, share, disk := filepath.Join(dir, "root"), filepath.Join(dir, "share"), filepath.Join(dir, "disk.raw")
	for _, d := range []string{root, share} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 64<<20); err != nil {
		t.Fatal(err)
	}
	missing := map[string]bool{}
	for _, m := range l.Missing() {
		missing[m] = true
	}
	p := &launch.Plan{
		Version: launch.Version, VMM: "krun", VCPUs: 1, RAMMiB: 256, Root: root, LogLevel: "warn",
		Disks:   []launch.Disk{{ID: "data", Path: disk}, {ID: "ro", Path: disk, ReadOnly: true}},
		Shares:  []launch.Share{{Tag: "share", Path: share}},
		Network: launch.Network{Mode: "tsi", PortMap: []string{"18080:8080"}},
		Rlimits: []string{"7=1024:4096"}, Workdir: "/", ExecPath: "/bin/true", Argv: []string{"a"}, Env: []string{"A=1"},
		// NestedVirt stays off: libkrun before 1.18 rejects it on Linux.
	}
	if !missing["krun_add_vsock_port2"] {
		p.VsockPorts = []launch.VsockPort{{Port: 1024, Path: filepath.Join(dir, "v.sock")}}
	}
	p.Console.StdioPorts = !missing["krun_disable_implicit_console"] && !missing["krun_add_virtio_console_default"]
	ctx, err := Configure(l, p)
	if err != nil {
		t.Fatalf("Configure(%+v) = %v, want nil", p, err)
	}
	if err := l.FreeCtx(ctx); err != nil {
		t.Errorf("FreeCtx(%d) = %v, want nil", ctx, err)
	}
	// What every session asks for: no network (1.17+).
	if !l.AtLeast(NoNetworkMinor) {
		t.Logf("libkrun %s is %s: network none is refused, as it should be", l.Path(), l.Version())
		return
	}
	p.Network = launch.Network{Mode: "none"}
	if ctx, err = Configure(l, p); err != nil {
		t.Fatalf("Configure(network none) = %v, want nil", err)
	}
	if err := l.FreeCtx(ctx); err != nil {
		t.Errorf("FreeCtx(%d) = %v, want nil", ctx, err)
	}
}

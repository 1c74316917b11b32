package libkrun

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// TestRealLibkrun configures a context on the real libkrun (the one
// scripts/fetch-libkrun builds from the crate registry, or
// LOFTD_LIBKRUN_LIBRARY): every call up to (not including)
// krun_start_enter must return 0.
func TestRealLibkrun(t *testing.T) {
	path := testenv.RequireLibkrun(t)
	l, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%q) = %v, want nil", path, err)
	}
	defer l.Close()
	t.Logf("libkrun %s is %s or newer; lacks optional symbols: %q", l.Path(), l.Version(), l.Missing())
	if ok, err := l.CheckNestedVirt(); err == nil {
		t.Logf("krun_check_nested_virt: nested virtualization supported = %v", ok)
	} else {
		t.Logf("CheckNestedVirt() = %v", err)
	}

	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	share := filepath.Join(dir, "share")
	for _, d := range []string{root, share} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	disk := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 64<<20); err != nil {
		t.Fatal(err)
	}
	// Every call up to krun_start_enter, in the order the libkrun backend
	// (helper/krun) makes them, with the optional ones the library has.
	// NestedVirt stays off: libkrun before 1.18 rejects it on Linux. TSI
	// with a port map: libkrun refuses a port map next to a virtio-net
	// device, so the net device is tested on its own context below.
	ctx, err := l.CreateCtx()
	if err != nil {
		t.Fatalf("CreateCtx() = %v, want nil", err)
	}
	type step struct {
		name string
		call func() error
	}
	steps := []step{
		{"SetVMConfig", func() error { return l.SetVMConfig(ctx, 1, 256) }},
		{"SetRoot", func() error { return l.SetRoot(ctx, root) }},
		{"AddDisk", func() error { return l.AddDisk(ctx, "data", disk, false) }},
		{"AddDisk read-only", func() error { return l.AddDisk(ctx, "ro", disk, true) }},
		{"AddVirtiofs", func() error { return l.AddVirtiofs(ctx, "share", share) }},
		{"SetPortMap", func() error { return l.SetPortMap(ctx, []string{"18080:8080"}) }},
		{"SetRlimits", func() error { return l.SetRlimits(ctx, []string{"7=1024:4096"}) }},
		{"SetWorkdir", func() error { return l.SetWorkdir(ctx, "/") }},
		{"SetExec", func() error { return l.SetExec(ctx, "/bin/true", []string{"a", "b"}, []string{"A=1"}) }},
	}
	if l.addVsockPort2 != nil {
		steps = append(steps, step{"AddVsockPort2", func() error { return l.AddVsockPort2(ctx, 1024, filepath.Join(dir, "v.sock"), false) }})
	}
	if l.disableImplicitConsole != nil && l.addVirtioConsoleDefault != nil {
		steps = append(steps, step{"consoles", func() error {
			return errors.Join(l.DisableImplicitConsole(ctx), l.AddVirtioConsoleDefault(ctx, 0, 1, 2))
		}})
	}
	for _, s := range steps {
		if err := s.call(); err != nil {
			t.Errorf("%s on a real libkrun = %v, want nil", s.name, err)
		}
	}
	if err := l.FreeCtx(ctx); err != nil {
		t.Errorf("FreeCtx(%d) = %v, want nil", ctx, err)
	}

	if l.addNetUnixstream == nil {
		t.Logf("skipping the net case: %s lacks krun_add_net_unixstream", l.Path())
		return
	}
	if ctx, err = l.CreateCtx(); err != nil {
		t.Fatal(err)
	}
	mac := [6]byte{0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee}
	if err := l.AddNetUnixstream(ctx, filepath.Join(dir, "passt.sock"), -1, mac, NetFeaturesCompat, 0); err != nil {
		t.Errorf("AddNetUnixstream on a real libkrun = %v, want nil", err)
	}
	if err := l.FreeCtx(ctx); err != nil {
		t.Errorf("FreeCtx(%d) = %v, want nil", ctx, err)
	}
}

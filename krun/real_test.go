package krun

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRealLibkrun configures a context on the real libkrun named by
// LOFTD_LIBKRUN_LIBRARY: every call up to (not including) krun_start_enter
// must return 0. It skips directly (not through testenv) because CI has no
// real libkrun: Debian does not package it, and CI boots VMs with QEMU.
func TestRealLibkrun(t *testing.T) {
	if os.Getenv(LibraryEnv) == "" {
		t.Skipf("%s is not set: no real libkrun to test against (CI has none; Debian does not package libkrun)", LibraryEnv)
	}
	l, err := Open("")
	if err != nil {
		t.Fatalf("Open(%q) = %v, want nil", os.Getenv(LibraryEnv), err)
	}
	defer l.Close()
	t.Logf("libkrun %s lacks optional symbols: %q", l.Path(), l.Missing())
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
	vm := VM{
		LogLevel: LogWarn,
		VCPUs:    1,
		RAMMiB:   256,
		// NestedVirt stays off: libkrun before 1.18 rejects it on Linux.
		Root:   root,
		Disks:  []Disk{{ID: "data", Path: disk}, {ID: "ro", Path: disk, ReadOnly: true}},
		Shares: []Share{{Tag: "share", Path: share}},
		// TSI with a port map; libkrun refuses a port map next to a
		// virtio-net device, so Net is tested on its own below.
		PortMap:  []string{"18080:8080"},
		Rlimits:  []string{"7=1024:4096"},
		Workdir:  "/",
		ExecPath: "/bin/true",
		Argv:     []string{"a", "b"},
		Env:      []string{"A=1"},
	}
	if l.addVsockPort2 != nil {
		vm.VsockPorts = []VsockPort{{Port: 1024, Path: filepath.Join(dir, "v.sock")}}
	}
	if l.disableImplicitConsole != nil && l.addVirtioConsoleDefault != nil {
		vm.Console = Console{DisableImplicit: true, Default: &ConsoleFDs{Stdin: 0, Stdout: 1, Stderr: 2}}
	}
	ctx, err := l.Configure(vm)
	if err != nil {
		t.Fatalf("Configure(%+v) = %v, want nil", vm, err)
	}
	if err := l.FreeCtx(ctx); err != nil {
		t.Errorf("FreeCtx(%d) = %v, want nil", ctx, err)
	}

	if l.addNetUnixstream == nil {
		t.Logf("skipping the net case: %s lacks krun_add_net_unixstream", l.Path())
		return
	}
	netVM := VM{VCPUs: 1, RAMMiB: 256, Root: root, ExecPath: "/bin/true",
		Net: &Net{SocketPath: filepath.Join(dir, "passt.sock"), MAC: "5a:94:ef:e4:0c:ee", Features: NetFeaturesCompat}}
	ctx, err = l.Configure(netVM)
	if err != nil {
		t.Fatalf("Configure(%+v) = %v, want nil", netVM, err)
	}
	if err := l.FreeCtx(ctx); err != nil {
		t.Errorf("FreeCtx(%d) = %v, want nil", ctx, err)
	}
}

package krun

import (
	"testing"

	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/libkrun"
	"github.com/loftd/loftd/libkrun/krundouble"
)

// openDouble opens a fresh libkrun test double (libkrun/krundouble) and
// records its calls into the returned log.
func openDouble(t testing.TB, hide ...string) (*libkrun.Lib, string) {
	t.Helper()
	l, err := libkrun.Open(krundouble.Build(t, hide...))
	if err != nil {
		t.Fatalf("Open(double) = %v, want nil", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return l, krundouble.Record(t)
}

// openRelease opens a double that plays libkrun 1.minor: the symbols that
// release has, and its rules.
func openRelease(t testing.TB, minor int) (*libkrun.Lib, string) {
	t.Helper()
	krundouble.Emulate(t, minor)
	return openDouble(t, krundouble.HideBefore(minor)...)
}

// fullPlan fills every field the krun backend reads.
func fullPlan() *launch.Plan {
	return &launch.Plan{
		Version: launch.Version, VMM: "krun", Library: "/usr/lib64/libkrun.so.1",
		VCPUs: 4, RAMMiB: 2048, NestedVirt: true, Root: "/state/tasks/t1/rootfs",
		Disks: []launch.Disk{
			{ID: "loftd-nix", Path: "/state/ws/nix.raw"},
			{ID: "loftd-containers", Path: "/state/ws/containers.raw", ReadOnly: true},
		},
		Shares:     []launch.Share{{Tag: "loftd-workspace", Path: "/home/u/project"}},
		Network:    launch.Network{Mode: "passt", Socket: "/run/user/1000/passt.sock", MAC: "5a:94:ef:e4:0c:ee"},
		VsockPorts: []launch.VsockPort{{Port: 1024, Path: "/state/tasks/t1/status.sock", Listen: true}, {Port: 1025, Path: "/state/tasks/t1/log.sock"}},
		Console:    launch.Console{Interactive: true, StdioPorts: true},
		LogLevel:   "warn",
		Rlimits:    []string{"7=1024:4096", "6=4096:8192"},
		Workdir:    "/workspace",
		ExecPath:   "/.loftd/guest-init",
		Argv:       []string{"enter", "--profile"},
		Env:        []string{"LOFTD_MODE=enter", "TERM=xterm-256color"},
	}
}

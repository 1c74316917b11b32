package krun

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/libkrun"
)

// TestRealLibkrunPlan configures, on the real libkrun (the one
// scripts/fetch-libkrun builds from the crate registry), every plan shape
// the e2e suite boots, up to (not including) krun_start_enter: each must
// configure without an error.
func TestRealLibkrunPlan(t *testing.T) {
	path := testenv.RequireLibkrun(t)
	l, err := libkrun.Open(path)
	if err != nil {
		t.Fatalf("Open(%q) = %v, want nil", path, err)
	}
	defer l.Close()
	if !l.AtLeast(NoNetworkMinor) {
		t.Fatalf("libkrun %s is %s: loftd's sessions need 1.%d (network none); scripts/fetch-libkrun builds 1.19", l.Path(), l.Version(), NoNetworkMinor)
	}
	dir := t.TempDir()
	root, share, vol, disk := filepath.Join(dir, "root"), filepath.Join(dir, "share"), filepath.Join(dir, "vol"), filepath.Join(dir, "disk.raw")
	for _, d := range []string{root, share, vol} {
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
	// A connected socketpair stands for passt's end, as the helper hands it.
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])

	base := func() *launch.Plan {
		return &launch.Plan{
			Version: launch.Version, VMM: "krun", VCPUs: 2, RAMMiB: 512, Root: root, LogLevel: "warn",
			Network:  launch.Network{Mode: "none"},
			Console:  launch.Console{StdioPorts: true},
			ExecPath: "/.loftd/guest-init", Argv: []string{"enter", "--", "true"}, Env: []string{"LOFTD_MODE=enter"}, Workdir: "/",
		}
	}
	tests := []struct {
		name   string
		change func(*launch.Plan)
		netFD  int
	}{
		{"root only, network none", func(*launch.Plan) {}, -1},
		{"persistent disks", func(p *launch.Plan) {
			p.Disks = []launch.Disk{{ID: "loftd-nix", Path: disk}, {ID: "loftd-containers", Path: disk}}
		}, -1},
		{"read-only disk (maintenance)", func(p *launch.Plan) {
			p.Disks = []launch.Disk{{ID: "loftd-nix", Path: disk, ReadOnly: true}}
		}, -1},
		{"workspace and volume shares", func(p *launch.Plan) {
			p.Shares = []launch.Share{{Tag: "loftd-workspace", Path: share}, {Tag: "loftd-vol0", Path: vol}}
		}, -1},
		{"read-only volume share (krun_add_virtiofs3)", func(p *launch.Plan) {
			p.Shares = []launch.Share{{Tag: "loftd-workspace", Path: share}, {Tag: "loftd-vol0", Path: vol, ReadOnly: true}}
		}, -1},
		{"passt network", func(p *launch.Plan) {
			p.Network = launch.Network{Mode: "passt", Passt: &launch.Passt{Path: "/usr/bin/passt", Features: launch.PasstFeatures{FD: true}}}
		}, fds[1]},
		{"tsi with a port map", func(p *launch.Plan) {
			p.Network = launch.Network{Mode: "tsi", Publish: []launch.Publish{{HostFirst: 18080, HostLast: 18080, GuestFirst: 8080, GuestLast: 8080, Proto: launch.TCP}}}
		}, -1},
		{"vsock port", func(p *launch.Plan) {
			p.VsockPorts = []launch.VsockPort{{Port: 1024, Path: filepath.Join(dir, "v.sock")}}
		}, -1},
		{"implicit console", func(p *launch.Plan) { p.Console = launch.Console{} }, -1},
		{"interactive console", func(p *launch.Plan) { p.Console = launch.Console{Interactive: true, StdioPorts: true} }, -1},
		{"rlimits", func(p *launch.Plan) { p.Rlimits = []string{"7=1024:4096", "6=512:512"} }, -1},
		{"nested virt off, one vCPU", func(p *launch.Plan) { p.VCPUs, p.RAMMiB = 1, 256 }, -1},
		{"everything a default session has", func(p *launch.Plan) {
			p.Disks = []launch.Disk{{ID: "loftd-nix", Path: disk}, {ID: "loftd-containers", Path: disk}}
			p.Shares = []launch.Share{{Tag: "loftd-workspace", Path: share}}
			p.Network = launch.Network{Mode: "passt", Passt: &launch.Passt{Path: "/usr/bin/passt", Features: launch.PasstFeatures{FD: true}}}
			p.Rlimits = []string{"7=1024:4096"}
		}, fds[1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			tt.change(p)
			ctx, err := ConfigureNet(l, p, tt.netFD)
			if err != nil {
				t.Fatalf("ConfigureNet(%s) on the real libkrun = %v, want nil", tt.name, err)
			}
			if err := l.FreeCtx(ctx); err != nil {
				t.Errorf("FreeCtx(%d) = %v, want nil", ctx, err)
			}
		})
	}
}

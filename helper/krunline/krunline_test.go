package krunline

import (
	"testing"

	"github.com/loftd/loftd/launch"
)

// TestCmdlineGolden pins the line libkrun v1.19.0 builds: the prolog
// (kernel_cmdline.rs:7-8 + lib.rs:2881 init=), krun_env with only the
// rlimits loftd may set (lib.rs:2882-2889, 273-277, 1322), the devices, the
// network words (builder.rs:1049-1065) and the epilog " -- " with no
// arguments (lib.rs:2890, builder.rs:1072-1074). Each insert_str adds one
// space before its piece (kernel/src/cmdline/mod.rs:103-107).
func TestCmdlineGolden(t *testing.T) {
	devs := []string{"virtio_mmio.device=4K@0xd0000000:5", "virtio_mmio.device=4K@0xd0001000:6"}
	tests := []struct {
		name    string
		plan    launch.Plan
		devices []string
		want    string
	}{
		{"none", launch.Plan{Network: launch.Network{Mode: "none"}}, devs,
			Prolog + "       virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6  -- "},
		{"rlimits", launch.Plan{Network: launch.Network{Mode: "none"}, Rlimits: []string{"7=1024:4096", "6=10:20"}}, nil,
			Prolog + `     KRUN_RLIMITS="7=1024:4096,6=10:20"   -- `},
		{"tsi", launch.Plan{Network: launch.Network{Mode: "tsi"}}, devs[:1],
			Prolog + "       virtio_mmio.device=4K@0xd0000000:5 tsi_hijack  -- "},
		{"passt", launch.Plan{Network: launch.Network{Mode: "passt"}}, devs[:1],
			Prolog + "       virtio_mmio.device=4K@0xd0000000:5 KRUN_DHCP=1  -- "},
	}
	for _, tt := range tests {
		// The workload never reaches the line: argv, env and workdir
		// travel in /.krun_config.json.
		tt.plan.ExecPath, tt.plan.Argv, tt.plan.Env, tt.plan.Workdir = "/.loftd/guest-init", []string{"enter", "--", "a b"}, []string{"K=V"}, "/"
		if got := Cmdline(&tt.plan, tt.devices); got != tt.want {
			t.Errorf("%s: Cmdline() =\n%q\nwant\n%q", tt.name, got, tt.want)
		}
	}
}

// Extra parameters go before the epilog, where the kernel reads them
// rather than handing them to init.
func TestCmdlineExtra(t *testing.T) {
	var p launch.Plan
	got := Cmdline(&p, []string{"virtio_mmio.device=512@0xfeb00e00:12"}, "init_on_alloc=1")
	want := Prolog + "       virtio_mmio.device=512@0xfeb00e00:12 init_on_alloc=1  -- "
	if got != want {
		t.Errorf("Cmdline(extra) =\n%q\nwant\n%q", got, want)
	}
}

// Package krunline produces the kernel command line libkrun v1.19.0 builds
// in krun_start_enter for a launch plan, so the QEMU backend can boot a
// guest exactly as libkrun would (the conformance mode, launch.Plan.KrunInit)
// and a test can pin what libkrun gives the guest. It is pure: no purego,
// no libkrun; it imports only launch.
package krunline

import (
	"strings"

	"github.com/loftd/loftd/launch"
)

// Prolog is DEFAULT_KERNEL_CMDLINE (src/vmm/src/vmm_config/kernel_cmdline.rs
// v1.19.0:7-8) followed by " init=/init.krun" (INIT_PATH; lib.rs:2881).
const Prolog = "reboot=k panic=-1 panic_print=0 nomodule console=hvc0 rootfstype=virtiofs rw quiet no-kvmapf init=/init.krun"

// InitPath is where libkrun's init lives in the guest's root (INIT_PATH).
const InitPath = "/init.krun"

// Cmdline returns the command line libkrun v1.19.0 loads for p, with
// devices (the "virtio_mmio.device=SIZE@ADDR:IRQ" entries of the VMM, in
// the order it registered the devices) where libkrun's MMIO device manager
// appends them. It follows builder.rs (v1.19.0) step by step; every piece is
// added with Cmdline::insert_str, which puts one space before it
// (src/kernel/src/cmdline/mod.rs:103-107, insert_str):
//
//  1. the prolog (builder.rs:587-588; lib.rs:2881)
//  2. krun_env, format!(" {} {} {} {} {}", exec path, workdir, block root,
//     rlimits, env) (lib.rs:2882-2889; builder.rs:593-594). loftd sets
//     none of exec path, workdir, env (helper/krun never calls krun_set_exec,
//     krun_set_env or krun_set_workdir), so only KRUN_RLIMITS="A,B" from
//     krun_set_rlimits (lib.rs:1322, 273-277) can appear; the empty ones
//     leave their spaces, which the kernel skips
//  3. the device entries (add_device_to_cmdline, device_manager/kvm/mmio.rs:
//     165-180, while attaching devices, builder.rs:974-1069)
//  4. "tsi_hijack" when the vsock has TSI (network "tsi": the implicit vsock
//     with HIJACK_INET, builder.rs:1049-1054), "KRUN_DHCP=1" for a net device
//     with the DHCP flag (network "passt", builder.rs:1062-1065)
//  5. the epilog " -- " plus the (empty) arguments (lib.rs:2890;
//     builder.rs:1072-1074)
//
// extra are parameters libkrun never adds, inserted before the epilog: what
// the QEMU backend needs that a KVM guest does not (helper/qemu, TCG).
func Cmdline(p *launch.Plan, devices []string, extra ...string) string {
	var b strings.Builder
	insert := func(s string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	insert(Prolog)
	rlimits := ""
	if len(p.Rlimits) > 0 {
		rlimits = `KRUN_RLIMITS="` + strings.Join(p.Rlimits, ",") + `"`
	}
	// exec path, workdir, block root, rlimits, env
	insert(" " + strings.Join([]string{"", "", "", rlimits, ""}, " "))
	for _, d := range devices {
		insert(d)
	}
	switch p.Network.Mode {
	case launch.NetworkTSI:
		insert("tsi_hijack")
	case launch.NetworkPasst:
		insert("KRUN_DHCP=1")
	}
	for _, e := range extra {
		insert(e)
	}
	insert(" -- ")
	return b.String()
}

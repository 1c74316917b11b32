// Package krun is the libkrun backend: it converts a launch plan (the one VM
// model, package launch) into the calls of the libkrun binding (package
// github.com/loftd/loftd/krun, imported here as libkrun) that configure a
// context, as vfkit's pkg/vf converts its pkg/config. It knows libkrun's
// rules (call order, limits, what refuses what); the binding only knows
// how to make each call.
package krun

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/libkrun"
)

// Releases whose rules Configure follows (libkrun 1.minor).
const (
	// NoNetworkMinor added krun_disable_implicit_vsock: without it libkrun
	// always gives a guest without a net device TSI (lib.rs v1.19.0:
	// 2926-2951), so network "none" cannot be honoured.
	NoNetworkMinor = 17
	// DHCPFlagMinor accepts NET_FLAG_DHCP_CLIENT on krun_add_net_unixstream
	// (v1.17.0 lib.rs:969-972 refuses any flag) and nested virtualization
	// on Linux (v1.17.0 lib.rs:1821-1823 refuses it).
	DHCPFlagMinor = 18
)

// DefaultMAC is the guest's MAC on a passt network when the plan names none
// (the address libkrun's own examples use).
const DefaultMAC = "5a:94:ef:e4:0c:ee"

// logLevels maps the plan's log level names to libkrun's.
var logLevels = map[string]libkrun.LogLevel{
	"": libkrun.LogOff, "off": libkrun.LogOff, "error": libkrun.LogError, "warn": libkrun.LogWarn,
	"info": libkrun.LogInfo, "debug": libkrun.LogDebug, "trace": libkrun.LogTrace,
}

// Configure creates a libkrun context from p, in this order:
//
//  1. krun_set_log_level (process-wide, before the context exists), unless
//     logging was already set up in this process: libkrun allows it once
//  2. krun_create_ctx
//  3. krun_set_vm_config, then krun_set_nested_virt when NestedVirt
//  4. krun_set_root, krun_add_disk per disk, krun_add_virtiofs per share
//     (krun_add_virtiofs3 with read_only for a read-only one)
//  5. network "passt": krun_add_net_unixstream on Network.Socket;
//     "tsi": krun_set_port_map (never NULL, which crashes libkrun; empty
//     exposes no guest port); "none": krun_disable_implicit_vsock, so no
//     vsock device and no TSI (no port map: libkrun refuses one after it,
//     ENODEV, lib.rs v1.19.0:1288, and ignores one set before, 2915), and
//     krun_add_vsock with no TSI flag when the plan has vsock ports
//  6. krun_add_vsock_port2 per vsock port
//  7. with Console.StdioPorts: krun_disable_implicit_console, then
//     krun_add_virtio_console_default on fds 0, 1, 2
//  8. krun_set_rlimits
//
// It never calls krun_set_exec, krun_set_env or krun_set_workdir: libkrun
// puts what they set on the kernel command line, each value in '"' without
// escaping, arguments after " -- " (lib.rs v1.19.0:1353-1365, 2881-2891),
// and a NULL environment copies the helper's own (1407-1411). Without
// KRUN_INIT libkrun's init runs Cmd with Env from /.krun_config.json
// (init.c:1450-1465, 1503-1507), which the host wrote with the plan's
// ExecPath, Argv and Env; the guest init chdirs to the workdir itself, after
// mounting it (KRUN_WORKDIR would be applied before, init.c:1495-1497).
//
// It checks the plan against the library first, so a plan this libkrun
// cannot run makes no call on a context. On error it frees the context. The
// context is ready for StartEnter.
//
// Memory needs no call: libkrun (v1.19.0, not the TEE builds) always
// attaches a virtio balloon offering VIRTIO_BALLOON_F_REPORTING
// (vmm/src/builder.rs attach_balloon_device; devices/src/virtio/balloon),
// and madvises each reported range MADV_DONTNEED, so freed guest memory goes
// back to the host as under QEMU; the API has no knob for it.
func Configure(lib *libkrun.Lib, p *launch.Plan) (libkrun.Ctx, error) {
	return ConfigureNet(lib, p, -1)
}

// ConfigureNet is Configure with the VM's end of passt's socketpair: with
// network "passt" and netFD >= 0 the virtio-net device is on that
// connected socket (the helper started passt), not on Network.Socket.
func ConfigureNet(lib *libkrun.Lib, p *launch.Plan, netFD int) (libkrun.Ctx, error) {
	c, err := check(lib, p, netFD)
	if err != nil {
		return 0, err
	}
	if err := lib.SetLogLevel(c.logLevel); err != nil && !errors.Is(err, libkrun.ErrLoggingSet) {
		return 0, err
	}
	ctx, err := lib.CreateCtx()
	if err != nil {
		return 0, err
	}
	for _, step := range []func(*libkrun.Lib, libkrun.Ctx, *launch.Plan, checked) error{
		configureMachine, configureStorage, configureNetwork, configureConsole, configureWorkload,
	} {
		if err := step(lib, ctx, p, c); err != nil {
			return 0, errors.Join(err, lib.FreeCtx(ctx))
		}
	}
	return ctx, nil
}

// checked is what check derived from the plan.
type checked struct {
	logLevel libkrun.LogLevel
	mac      [6]byte
	netFlags uint32
	netFD    int // passt's socket, or -1 for Network.Socket
}

// maxVCPUs is launch.MaxVCPUs (krun_set_vm_config takes a uint8), or
// fewer when libkrun says KVM allows fewer (krun_get_max_vcpus, 1.16).
func maxVCPUs(lib *libkrun.Lib) int {
	if n, err := lib.MaxVCPUs(); err == nil && n > 0 && n < launch.MaxVCPUs {
		return n
	}
	return launch.MaxVCPUs
}

// check refuses what libkrun would only reject after the context exists, or
// not at all (a vCPU count above 255 would wrap around in a uint8), and
// what this libkrun's release cannot do.
func check(lib *libkrun.Lib, p *launch.Plan, netFD int) (checked, error) {
	c := checked{netFD: -1}
	if most := maxVCPUs(lib); p.VCPUs < 1 || p.VCPUs > most {
		return c, fmt.Errorf("launch plan: %d vCPUs: libkrun runs 1 to %d here (ask for fewer with --cpus)", p.VCPUs, most)
	}
	if p.NestedVirt && !lib.AtLeast(DHCPFlagMinor) {
		return c, fmt.Errorf("launch plan: nested virtualization needs libkrun >= 1.%d on Linux; %s is %s or older than that", DHCPFlagMinor, lib.Path(), lib.Version())
	}
	if p.RAMMiB < 1 || p.RAMMiB > launch.MiB(^uint32(0)) {
		return c, fmt.Errorf("launch plan: %d MiB of RAM is out of libkrun's range", p.RAMMiB)
	}
	level, ok := logLevels[p.LogLevel]
	if !ok {
		return c, fmt.Errorf("launch plan: log level %q is not off, error, warn, info, debug or trace", p.LogLevel)
	}
	c.logLevel = level
	if err := checkShares(lib, p); err != nil {
		return c, err
	}
	switch n := p.Network; n.Mode {
	case launch.NetworkPasst, launch.NetworkEgress:
		if n.Socket == "" && netFD < 0 {
			return c, fmt.Errorf("launch plan: network %s without a socket", n.Mode)
		}
		if n.Socket == "" {
			c.netFD = netFD
		}
		mac := n.MAC
		if mac == "" {
			mac = DefaultMAC
		}
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != len(c.mac) {
			return c, fmt.Errorf("launch plan: MAC %q is not a 6-byte address like %s", n.MAC, DefaultMAC)
		}
		copy(c.mac[:], hw)
		// libkrun's init asks passt's DHCP server for the address when
		// the flag is there; before 1.18 the flag is refused.
		// loftd's egress network serves no DHCP: the guest init sets
		// the same fixed addresses itself.
		if lib.AtLeast(DHCPFlagMinor) && n.Mode == launch.NetworkPasst {
			c.netFlags = libkrun.NetFlagDHCPClient
		}
	case launch.NetworkTSI, launch.NetworkNone:
		if n.Socket != "" || n.MAC != "" || n.Passt != nil || n.Egress != nil {
			return c, fmt.Errorf("launch plan: network %s with a net device (socket %q, MAC %q): only passt has one", n.Mode, n.Socket, n.MAC)
		}
		if n.Mode == launch.NetworkNone && len(n.Publish) > 0 {
			return c, fmt.Errorf("launch plan: publish %s with network none", n.Publish[0])
		}
		if _, err := PortMap(n.Publish); err != nil {
			return c, fmt.Errorf("launch plan: %w", err)
		}
		if n.Mode == launch.NetworkNone && !lib.AtLeast(NoNetworkMinor) {
			return c, fmt.Errorf("launch plan: network none needs libkrun >= 1.%d (krun_disable_implicit_vsock): "+
				"older releases give every guest outbound network and expose its ports; %s looks like %s (upgrade libkrun, or use --vmm qemu)",
				NoNetworkMinor, lib.Path(), lib.Version())
		}
	default:
		return c, fmt.Errorf("launch plan: network mode %q is not egress, passt, tsi or none", n.Mode)
	}
	return c, nil
}

// checkShares refuses what libkrun's in-process virtiofs cannot do
// safely: id-mapped shares (it has no user namespace of its own, so as
// root guest root would be host root on them) and read-only shares on a
// libkrun without krun_add_virtiofs3.
func checkShares(lib *libkrun.Lib, p *launch.Plan) error {
	if p.ShareIDs != nil && len(p.Shares) > 0 {
		return fmt.Errorf("launch plan: shares with an id map: libkrun serves virtiofs as the helper, with no id map (run loftd as your user, or use --vmm qemu)")
	}
	for _, s := range p.Shares {
		if s.ReadOnly && slices.Contains(lib.Missing(), "krun_add_virtiofs3") {
			return fmt.Errorf("launch plan: read-only share %s: %s lacks krun_add_virtiofs3 (libkrun 1.19), so the guest could write it (upgrade libkrun, or use --vmm qemu)", s.Path, lib.Path())
		}
	}
	return nil
}

func configureMachine(lib *libkrun.Lib, ctx libkrun.Ctx, p *launch.Plan, _ checked) error {
	if err := lib.SetVMConfig(ctx, uint8(p.VCPUs), uint32(p.RAMMiB)); err != nil {
		return fmt.Errorf("%d vCPUs, %d MiB: %w", p.VCPUs, p.RAMMiB, err)
	}
	if p.NestedVirt {
		if err := lib.SetNestedVirt(ctx, true); err != nil {
			return fmt.Errorf("nested virtualization: %w", err)
		}
	}
	return nil
}

func configureStorage(lib *libkrun.Lib, ctx libkrun.Ctx, p *launch.Plan, _ checked) error {
	if err := lib.SetRoot(ctx, p.Root); err != nil {
		return fmt.Errorf("root %s: %w", p.Root, err)
	}
	for _, d := range p.Disks {
		if err := lib.AddDisk(ctx, d.ID, d.Path, d.ReadOnly); err != nil {
			return fmt.Errorf("disk %s %s: %w", d.ID, d.Path, err)
		}
	}
	for _, s := range p.Shares {
		var err error
		if s.ReadOnly {
			// libkrun's own virtiofs server refuses the writes: it
			// runs in this process, so no mount of ours could.
			err = lib.AddVirtiofs3(ctx, s.Tag, s.Path, 0, true)
		} else {
			err = lib.AddVirtiofs(ctx, s.Tag, s.Path)
		}
		if err != nil {
			return fmt.Errorf("share %s %s: %w", s.Tag, s.Path, err)
		}
	}
	return nil
}

func configureNetwork(lib *libkrun.Lib, ctx libkrun.Ctx, p *launch.Plan, c checked) error {
	n := p.Network
	if n.Mode.HasNIC() {
		// With fd -1 libkrun connects to the socket path itself; else
		// the path is empty (NULL) and the fd is passt's connected socket.
		where := n.Socket
		if c.netFD >= 0 {
			where = fmt.Sprintf("fd %d", c.netFD)
		}
		if err := lib.AddNetUnixstream(ctx, n.Socket, c.netFD, c.mac, libkrun.NetFeaturesCompat, c.netFlags); err != nil {
			return fmt.Errorf("net %s on %s: %w", net.HardwareAddr(c.mac[:]), where, err)
		}
	} else if n.Mode == launch.NetworkNone {
		// No vsock device, so no TSI: no outbound network, no exposed
		// port (lib.rs v1.19.0:2914-2915).
		if err := lib.DisableImplicitVsock(ctx); err != nil {
			return fmt.Errorf("network none: %w", err)
		}
		if len(p.VsockPorts) > 0 {
			// The vsock ports need a device again: an explicit one,
			// with no TSI flag (lib.rs:2916-2924).
			if err := lib.AddVsock(ctx, 0); err != nil {
				return fmt.Errorf("network none, vsock without TSI: %w", err)
			}
		}
	} else {
		// Without a net device libkrun gives the guest TSI (lib.rs
		// v1.19.0:2926-2951); the port map says which guest ports the
		// host sees, none when empty (check rendered it once already).
		portMap, _ := PortMap(n.Publish)
		if err := lib.SetPortMap(ctx, portMap); err != nil {
			return fmt.Errorf("port map %v: %w", portMap, err)
		}
	}
	for _, v := range p.VsockPorts {
		if err := lib.AddVsockPort2(ctx, v.Port, v.Path, v.Listen); err != nil {
			return fmt.Errorf("vsock port %d %s: %w", v.Port, v.Path, err)
		}
	}
	return nil
}

func configureConsole(lib *libkrun.Lib, ctx libkrun.Ctx, p *launch.Plan, _ checked) error {
	if !p.Console.StdioPorts {
		return nil
	}
	if err := lib.DisableImplicitConsole(ctx); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	// The helper's stdio is the session's: the parent gave it its own.
	if err := lib.AddVirtioConsoleDefault(ctx, 0, 1, 2); err != nil {
		return fmt.Errorf("console on fds 0, 1, 2: %w", err)
	}
	return nil
}

// configureWorkload sets only the rlimits: ExecPath, Argv, Env and Workdir
// travel in /.krun_config.json (see Configure).
func configureWorkload(lib *libkrun.Lib, ctx libkrun.Ctx, p *launch.Plan, _ checked) error {
	if len(p.Rlimits) > 0 {
		if err := lib.SetRlimits(ctx, p.Rlimits); err != nil {
			return fmt.Errorf("rlimits %v: %w", p.Rlimits, err)
		}
	}
	return nil
}

// PortMap renders publishes in libkrun's TSI port map form, "HOST:GUEST",
// one pair per port: the map has no ranges, addresses or protocols, so a
// publish that needs one is refused (the host refuses it earlier, at
// parse time, with the flag's name). Never nil: a NULL map crashes libkrun.
func PortMap(pubs []launch.Publish) ([]string, error) {
	out := []string{}
	for _, p := range pubs {
		if p.Proto != launch.TCP || p.HostIP != "" {
			return nil, fmt.Errorf("publish %s: libkrun's TSI port map carries TCP on every address only", p)
		}
		for i := 0; i <= p.HostLast-p.HostFirst; i++ {
			out = append(out, fmt.Sprintf("%d:%d", p.HostFirst+i, p.GuestFirst+i))
		}
	}
	return out, nil
}

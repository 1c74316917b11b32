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

	libkrun "github.com/loftd/loftd/krun"
	"github.com/loftd/loftd/launch"
)

// MaxVCPUs is libkrun's vCPU limit: krun_set_vm_config takes a uint8.
const MaxVCPUs = 255

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
//  5. network "passt": krun_add_net_unixstream on Network.Socket;
//     "tsi" and "none": krun_set_port_map (never NULL, which exposes every
//     guest port and crashes some libkrun versions; "none" exposes none)
//  6. krun_add_vsock_port2 per vsock port
//  7. with Console.StdioPorts: krun_disable_implicit_console, then
//     krun_add_virtio_console_default on fds 0, 1, 2
//  8. krun_set_rlimits, krun_set_workdir, krun_set_exec (the environment is
//     exactly Env, never the helper's)
//
// It checks the plan first, so a plan libkrun cannot run makes no call. On
// error it frees the context. The context is ready for StartEnter.
func Configure(lib *libkrun.Lib, p *launch.Plan) (libkrun.Ctx, error) {
	c, err := check(p)
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
}

// check refuses what libkrun would only reject after the context exists, or
// not at all (a vCPU count above 255 would wrap around in a uint8).
func check(p *launch.Plan) (checked, error) {
	var c checked
	if p.VCPUs < 1 || p.VCPUs > MaxVCPUs {
		return c, fmt.Errorf("launch plan: %d vCPUs: libkrun runs 1 to %d (ask for fewer with --cpus)", p.VCPUs, MaxVCPUs)
	}
	if p.RAMMiB < 1 || uint64(p.RAMMiB) > uint64(^uint32(0)) {
		return c, fmt.Errorf("launch plan: %d MiB of RAM is out of libkrun's range", p.RAMMiB)
	}
	level, ok := logLevels[p.LogLevel]
	if !ok {
		return c, fmt.Errorf("launch plan: log level %q is not off, error, warn, info, debug or trace", p.LogLevel)
	}
	c.logLevel = level
	switch n := p.Network; n.Mode {
	case "passt":
		if n.Socket == "" {
			return c, fmt.Errorf("launch plan: network passt without a socket")
		}
		if len(n.PortMap) > 0 {
			return c, fmt.Errorf("launch plan: port map %v with network passt: libkrun refuses a port map next to a net device (passt publishes the ports)", n.PortMap)
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
	case "tsi", "none":
		if n.Socket != "" || n.MAC != "" {
			return c, fmt.Errorf("launch plan: network %s with a net device (socket %q, MAC %q): only passt has one", n.Mode, n.Socket, n.MAC)
		}
		if n.Mode == "none" && len(n.PortMap) > 0 {
			return c, fmt.Errorf("launch plan: port map %v with network none", n.PortMap)
		}
	default:
		return c, fmt.Errorf("launch plan: network mode %q is not passt, tsi or none", n.Mode)
	}
	return c, nil
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
		if err := lib.AddVirtiofs(ctx, s.Tag, s.Path); err != nil {
			return fmt.Errorf("share %s %s: %w", s.Tag, s.Path, err)
		}
	}
	return nil
}

func configureNetwork(lib *libkrun.Lib, ctx libkrun.Ctx, p *launch.Plan, c checked) error {
	n := p.Network
	if n.Mode == "passt" {
		// fd -1: libkrun connects to the socket path itself. Its init
		// asks passt's DHCP server for the address.
		if err := lib.AddNetUnixstream(ctx, n.Socket, -1, c.mac, libkrun.NetFeaturesCompat, libkrun.NetFlagDHCPClient); err != nil {
			return fmt.Errorf("net %s on %s: %w", net.HardwareAddr(c.mac[:]), n.Socket, err)
		}
	} else {
		// Without a net device libkrun gives the guest TSI. "none" still
		// has its outbound connections until krun_disable_implicit_vsock
		// is bound (the network issue); at least no guest port is exposed.
		portMap := n.PortMap
		if portMap == nil {
			portMap = []string{}
		}
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

func configureWorkload(lib *libkrun.Lib, ctx libkrun.Ctx, p *launch.Plan, _ checked) error {
	if len(p.Rlimits) > 0 {
		if err := lib.SetRlimits(ctx, p.Rlimits); err != nil {
			return fmt.Errorf("rlimits %v: %w", p.Rlimits, err)
		}
	}
	if p.Workdir != "" {
		if err := lib.SetWorkdir(ctx, p.Workdir); err != nil {
			return fmt.Errorf("workdir %s: %w", p.Workdir, err)
		}
	}
	// Never a nil argv or env: libkrun would copy the helper's own
	// environment into the guest.
	argv, env := p.Argv, p.Env
	if argv == nil {
		argv = []string{}
	}
	if env == nil {
		env = []string{}
	}
	if err := lib.SetExec(ctx, p.ExecPath, argv, env); err != nil {
		return fmt.Errorf("exec %s: %w", p.ExecPath, err)
	}
	return nil
}

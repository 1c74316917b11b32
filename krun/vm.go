package krun

import (
	"errors"
	"fmt"
	"net"
)

// VM is a whole libkrun configuration as plain data: it serializes to JSON,
// and Configure turns it into krun_* calls. Zero-valued optional fields make
// no call, so libkrun's own default applies.
type VM struct {
	LogLevel LogLevel `json:"log_level"`
	VCPUs    uint8    `json:"vcpus"`
	RAMMiB   uint32   `json:"ram_mib"`
	// NestedVirt asks libkrun to expose virtualization to the guest. libkrun
	// before 1.18 refuses it on Linux (EINVAL).
	NestedVirt bool `json:"nested_virt,omitempty"`
	// Root is the host directory shared as the guest's root filesystem.
	Root   string  `json:"root,omitempty"`
	Disks  []Disk  `json:"disks,omitempty"`
	Shares []Share `json:"shares,omitempty"`
	// Net adds a virtio-net device; without it libkrun uses TSI.
	Net *Net `json:"net,omitempty"`
	// PortMap holds "HOST:GUEST" TCP pairs for TSI. nil (JSON null) makes
	// no call: libkrun then exposes every listening guest port. An empty
	// list exposes none. libkrun refuses a port map together with Net.
	PortMap    []string    `json:"port_map"`
	VsockPorts []VsockPort `json:"vsock_ports,omitempty"`
	Console    Console     `json:"console"`
	// Rlimits in libkrun's "RESOURCE=SOFT:HARD" form, RESOURCE numeric.
	Rlimits []string `json:"rlimits,omitempty"`
	// Workdir is the workload's working directory inside the guest.
	Workdir string `json:"workdir,omitempty"`
	// ExecPath, Argv (without argv[0]) and Env set the workload through
	// krun_set_exec. Without ExecPath, libkrun's init runs what the root's
	// /.krun_config.json says, and Env alone goes through krun_set_env. The
	// environment is always exactly Env: never the host's.
	ExecPath string   `json:"exec_path,omitempty"`
	Argv     []string `json:"argv,omitempty"`
	Env      []string `json:"env,omitempty"`
}

// Disk is a raw disk image attached as a virtio-blk device.
type Disk struct {
	ID       string `json:"id"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// Share is a host directory exported over virtiofs under Tag.
type Share struct {
	Tag  string `json:"tag"`
	Path string `json:"path"`
}

// Net is a virtio-net device backed by a unixstream proxy such as passt,
// reached by SocketPath or, when that is empty, by the connected FD.
type Net struct {
	SocketPath string `json:"socket_path,omitempty"`
	FD         int    `json:"fd,omitempty"`
	// MAC in the usual colon form, e.g. "5a:94:ef:e4:0c:ee".
	MAC string `json:"mac"`
	// Features are virtio-net feature bits (NetFeaturesCompat is what
	// libkrun's older passt API enabled); Flags are NetFlag* bits.
	Features uint32 `json:"features,omitempty"`
	Flags    uint32 `json:"flags,omitempty"`
}

// Virtio-net feature bits and libkrun net flags (include/libkrun.h).
const (
	NetFeatureCSUM      = 1 << 0
	NetFeatureGuestCSUM = 1 << 1
	NetFeatureGuestTSO4 = 1 << 7
	NetFeatureGuestTSO6 = 1 << 8
	NetFeatureGuestUFO  = 1 << 10
	NetFeatureHostTSO4  = 1 << 11
	NetFeatureHostTSO6  = 1 << 12
	NetFeatureHostUFO   = 1 << 14

	// NetFeaturesCompat is libkrun's COMPAT_NET_FEATURES.
	NetFeaturesCompat = NetFeatureCSUM | NetFeatureGuestCSUM | NetFeatureGuestTSO4 |
		NetFeatureGuestUFO | NetFeatureHostTSO4 | NetFeatureHostUFO

	NetFlagVfkit      = 1 << 0
	NetFlagDHCPClient = 1 << 1 // libkrun's init runs a DHCP client on the device
)

// VsockPort connects guest vsock Port to the host UNIX socket Path. Listen:
// the host side initiates connections.
type VsockPort struct {
	Port   uint32 `json:"port"`
	Path   string `json:"path"`
	Listen bool   `json:"listen,omitempty"`
}

// Console says which consoles the guest gets.
type Console struct {
	// DisableImplicit drops the console libkrun creates on its own.
	DisableImplicit bool `json:"disable_implicit,omitempty"`
	// Default, when set, adds a virtio-console on these fds.
	Default *ConsoleFDs `json:"default,omitempty"`
}

// ConsoleFDs are the host fds behind a virtio-console.
type ConsoleFDs struct {
	Stdin  int `json:"stdin"`
	Stdout int `json:"stdout"`
	Stderr int `json:"stderr"`
}

// Configure creates a context and configures it from vm, in this order:
//
//  1. krun_set_log_level (process-wide, before the context exists), unless
//     logging was already set up in this process (by InitLog or an earlier
//     Configure): libkrun allows it once
//  2. krun_create_ctx
//  3. krun_set_vm_config
//  4. krun_set_nested_virt, when NestedVirt
//  5. krun_set_root, when Root is set
//  6. krun_add_disk, per disk
//  7. krun_add_virtiofs, per share
//  8. krun_add_net_unixstream, when Net is set
//  9. krun_set_port_map, when PortMap is not nil (after net, as libkrun asks)
//  10. krun_add_vsock_port2, per vsock port
//  11. krun_disable_implicit_console, then krun_add_virtio_console_default
//  12. krun_set_rlimits, when Rlimits is set
//  13. krun_set_workdir, when Workdir is set
//  14. krun_set_exec (with Env), when ExecPath is set; else krun_set_env
//     when Env is set
//
// On error it frees the context. The context is ready for StartEnter.
func (l *Lib) Configure(vm VM) (Ctx, error) {
	mac, err := vm.validate()
	if err != nil {
		return 0, err
	}
	if err := l.SetLogLevel(vm.LogLevel); err != nil && !errors.Is(err, errLoggingSet) {
		return 0, err
	}
	ctx, err := l.CreateCtx()
	if err != nil {
		return 0, err
	}
	steps := []func(Ctx, *VM) error{
		l.configureMachine,
		l.configureStorage,
		func(ctx Ctx, vm *VM) error { return l.configureNetwork(ctx, vm, mac) },
		l.configureConsole,
		l.configureWorkload,
	}
	for _, step := range steps {
		if err := step(ctx, &vm); err != nil {
			return 0, errors.Join(err, l.FreeCtx(ctx))
		}
	}
	return ctx, nil
}

// validate checks what libkrun would only reject after the context exists,
// and parses the MAC address.
func (vm *VM) validate() ([6]byte, error) {
	var mac [6]byte
	if vm.Net == nil {
		return mac, nil
	}
	if (vm.Net.SocketPath == "") == (vm.Net.FD <= 0) {
		return mac, fmt.Errorf("net: set exactly one of socket path (%q) and fd (%d)", vm.Net.SocketPath, vm.Net.FD)
	}
	hw, err := net.ParseMAC(vm.Net.MAC)
	if err != nil || len(hw) != len(mac) {
		return mac, fmt.Errorf("net: MAC %q is not a 6-byte address like 5a:94:ef:e4:0c:ee", vm.Net.MAC)
	}
	copy(mac[:], hw)
	return mac, nil
}

func (l *Lib) configureMachine(ctx Ctx, vm *VM) error {
	if err := l.SetVMConfig(ctx, vm.VCPUs, vm.RAMMiB); err != nil {
		return fmt.Errorf("%d vCPUs, %d MiB: %w", vm.VCPUs, vm.RAMMiB, err)
	}
	if vm.NestedVirt {
		if err := l.SetNestedVirt(ctx, true); err != nil {
			return fmt.Errorf("nested virtualization: %w", err)
		}
	}
	return nil
}

func (l *Lib) configureStorage(ctx Ctx, vm *VM) error {
	if vm.Root != "" {
		if err := l.SetRoot(ctx, vm.Root); err != nil {
			return fmt.Errorf("root %s: %w", vm.Root, err)
		}
	}
	for _, d := range vm.Disks {
		if err := l.AddDisk(ctx, d.ID, d.Path, d.ReadOnly); err != nil {
			return fmt.Errorf("disk %s %s: %w", d.ID, d.Path, err)
		}
	}
	for _, s := range vm.Shares {
		if err := l.AddVirtiofs(ctx, s.Tag, s.Path); err != nil {
			return fmt.Errorf("share %s %s: %w", s.Tag, s.Path, err)
		}
	}
	return nil
}

func (l *Lib) configureNetwork(ctx Ctx, vm *VM, mac [6]byte) error {
	if n := vm.Net; n != nil {
		fd := n.FD
		if n.SocketPath != "" {
			fd = -1 // libkrun: fd must be -1 when a path is given
		}
		if err := l.AddNetUnixstream(ctx, n.SocketPath, fd, mac, n.Features, n.Flags); err != nil {
			return fmt.Errorf("net %s: %w", n.MAC, err)
		}
	}
	if vm.PortMap != nil {
		if err := l.SetPortMap(ctx, vm.PortMap); err != nil {
			return fmt.Errorf("port map %v: %w", vm.PortMap, err)
		}
	}
	for _, p := range vm.VsockPorts {
		if err := l.AddVsockPort2(ctx, p.Port, p.Path, p.Listen); err != nil {
			return fmt.Errorf("vsock port %d %s: %w", p.Port, p.Path, err)
		}
	}
	return nil
}

func (l *Lib) configureConsole(ctx Ctx, vm *VM) error {
	if vm.Console.DisableImplicit {
		if err := l.DisableImplicitConsole(ctx); err != nil {
			return fmt.Errorf("console: %w", err)
		}
	}
	if c := vm.Console.Default; c != nil {
		if err := l.AddVirtioConsoleDefault(ctx, c.Stdin, c.Stdout, c.Stderr); err != nil {
			return fmt.Errorf("console fds %d %d %d: %w", c.Stdin, c.Stdout, c.Stderr, err)
		}
	}
	return nil
}

func (l *Lib) configureWorkload(ctx Ctx, vm *VM) error {
	if len(vm.Rlimits) > 0 {
		if err := l.SetRlimits(ctx, vm.Rlimits); err != nil {
			return fmt.Errorf("rlimits %v: %w", vm.Rlimits, err)
		}
	}
	if vm.Workdir != "" {
		if err := l.SetWorkdir(ctx, vm.Workdir); err != nil {
			return fmt.Errorf("workdir %s: %w", vm.Workdir, err)
		}
	}
	// Never pass a nil env: libkrun would copy the helper's environment
	// into the guest.
	env := vm.Env
	if env == nil {
		env = []string{}
	}
	switch {
	case vm.ExecPath != "":
		argv := vm.Argv
		if argv == nil {
			argv = []string{}
		}
		if err := l.SetExec(ctx, vm.ExecPath, argv, env); err != nil {
			return fmt.Errorf("exec %s: %w", vm.ExecPath, err)
		}
	case len(vm.Env) > 0:
		if err := l.SetEnv(ctx, env); err != nil {
			return fmt.Errorf("env: %w", err)
		}
	}
	return nil
}

// Package launch holds the versioned launch plan that the parent loftd hands
// to its helper (`loftd internal enter TASKDIR`, package vmm): its format,
// Validate, and Write and Read of TASKDIR/launch.json.
// The plan is pure data: everything the helper needs to boot the VM, and
// nothing it has to work out again.
package launch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/loftd/loftd/internal/atomicfile"
	"github.com/loftd/loftd/internal/confine"
)

// Version is the plan format this binary writes and reads. The parent and the
// helper are one binary, so a mismatch means a stale task directory.
const Version = 3

// FileName is the plan's name inside the task directory.
const FileName = "launch.json"

// Plan is everything the helper needs to boot one VM.
type Plan struct {
	Version int `json:"version"`
	// VMM is the backend to use: krun or qemu (resolved from auto by the
	// parent, which says why under --debug).
	VMM VMM `json:"vmm"`
	// Library is the libkrun shared library (krun backend).
	Library string `json:"library,omitempty"`
	// KrunfwLibrary is the libkrunfw shared library (qemu backend's kernel).
	KrunfwLibrary string `json:"krunfw_library,omitempty"`
	// QEMU and Virtiofsd are the binaries the qemu backend runs, found
	// once by the parent, with Virtiofsd's flavor (set with Virtiofsd).
	QEMU            string          `json:"qemu,omitempty"`
	Virtiofsd       string          `json:"virtiofsd,omitempty"`
	VirtiofsdFlavor VirtiofsdFlavor `json:"virtiofsd_flavor,omitempty"`
	VCPUs           int             `json:"vcpus"`
	RAMMiB          MiB             `json:"ram_mib"`
	Root            string          `json:"root"`
	Disks           []Disk          `json:"disks,omitempty"`
	Shares          []Share         `json:"shares,omitempty"`
	// ShareIDs, when set, is the user namespace every share's virtiofsd
	// (not the root's) starts in: loftd runs as root and guest ids must not
	// be host ids. Nil rootless: the helper's keep-id namespace maps them.
	ShareIDs   *ShareIDs `json:"share_ids,omitempty"`
	Network    Network   `json:"network"`
	Console    Console   `json:"console"`
	NestedVirt bool      `json:"nested_virt"`
	// Rlimits in libkrun's "RESOURCE=SOFT:HARD" form, RESOURCE numeric.
	Rlimits []string `json:"rlimits,omitempty"`
	// ExecPath, Argv, Env and Workdir are what the guest runs first (the
	// guest init), exactly as written into /.krun_config.json.
	ExecPath string   `json:"exec_path"`
	Argv     []string `json:"argv"`
	Env      []string `json:"env"`
	Workdir  string   `json:"workdir"`
	// CacheDir holds what the helper may keep between runs (the PVH
	// kernel image, the accelerator probe's verdict); "" keeps nothing.
	CacheDir string `json:"cache_dir,omitempty"`
	// LogLevel is the VMM's own log level on the helper's stderr: "" or
	// "off", "error", "warn", "info", "debug", "trace" (krun backend).
	LogLevel string `json:"log_level,omitempty"`
	// VsockPorts connect guest vsock ports to host UNIX sockets (krun
	// backend; QEMU carries its ports over virtio-serial).
	VsockPorts []VsockPort `json:"vsock_ports,omitempty"`
	// KrunInit, for testing only (--krun-init), is a libkrun init binary
	// (init.krun) the host injected as /init.krun: the qemu backend then
	// boots the guest as krun_start_enter would (helper/krunline), so the
	// guest contract is checked through libkrun's own init under QEMU.
	KrunInit string `json:"krun_init,omitempty"`
	// Sandbox is how the helper confines itself and QEMU
	// (internal/confine; "" is enforce, fail closed).
	Sandbox confine.Mode `json:"sandbox,omitempty"`
}

// VsockPort connects guest vsock Port to the host UNIX socket Path. Listen:
// the host side initiates connections (the guest listens).
type VsockPort struct {
	Port   uint32 `json:"port"`
	Path   string `json:"path"`
	Listen bool   `json:"listen,omitempty"`
}

// Disk is a raw disk image attached as a virtio-blk device.
type Disk struct {
	ID       string `json:"id"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only"`
}

// Share is a host directory exported to the guest over virtiofs.
type Share struct {
	Tag  string `json:"tag"`
	Path string `json:"path"`
	// ReadOnly is enforced on the host (a read-only mount of the
	// directory), not only by the guest's mount flags.
	ReadOnly bool `json:"read_only,omitempty"`
}

// ShareIDs maps the ids virtiofsd serves the guest (inside its user
// namespace) to host ids.
type ShareIDs struct {
	UIDs []IDMap `json:"uids"`
	GIDs []IDMap `json:"gids"`
}

// IDMap maps Size consecutive ids from Guest, as the guest sees them, to
// Host, as in /proc/PID/uid_map.
type IDMap struct {
	Guest uint32 `json:"guest"`
	Host  uint32 `json:"host"`
	Size  uint32 `json:"size"`
}

// Network is the guest's network.
type Network struct {
	Mode NetworkMode `json:"mode"`
	// Publish lists the guest ports the host publishes: passt's (mode
	// passt) or libkrun's TSI port map (mode tsi), each backend rendering
	// its own syntax.
	Publish []Publish `json:"publish,omitempty"`
	// Socket is passt's UNIX socket (mode passt), backing a virtio-net
	// device with MAC (a default when empty). Empty with Passt set: the
	// helper starts Passt itself on a socketpair.
	Socket string `json:"socket,omitempty"`
	MAC    string `json:"mac,omitempty"`
	// Passt is the passt the helper starts for mode passt, as the parent
	// found and probed it: the helper runs it without asking it again.
	Passt *Passt `json:"passt,omitempty"`
	// Egress is the policy network's configuration (mode egress): the
	// helper starts `loftd internal netstack` with it.
	Egress *Egress `json:"egress,omitempty"`
}

// Egress is what the policy network enforces: the --allow values (CIDRs,
// names, *.names) as the parent validated them, and --allow-host.
type Egress struct {
	Allow     []string `json:"allow,omitempty"`
	AllowHost bool     `json:"allow_host,omitempty"`
	// Exe is the loftd binary that runs the netstack (the parent's, as
	// found once).
	Exe string `json:"exe"`
	// Intercept, when set, is the TLS interception for secrets the
	// netstack runs (egress/mitm).
	Intercept *Intercept `json:"intercept,omitempty"`
}

// Intercept is the netstack's TLS interception: where the workspace's CA
// is, which certificates verify real servers besides the system's, and the
// secrets. Values are never in the plan: the netstack reads each secret's
// file itself, and the CA key stays in the workspace's state directory.
type Intercept struct {
	CADir   string   `json:"ca_dir"`
	ExtraCA []string `json:"extra_ca,omitempty"`
	Secrets []Secret `json:"secrets"`
}

// Secret is one secret: the guest variable Name holds Placeholder, which
// the netstack replaces with the content of File on TLS to Hosts only.
type Secret struct {
	Name        string   `json:"name"`
	File        string   `json:"file"`
	Placeholder string   `json:"placeholder"`
	Hosts       []string `json:"hosts"`
}

// Passt is a passt binary and what its --help and --version said.
type Passt struct {
	Path     string        `json:"path"`
	Features PasstFeatures `json:"features"`
}

// PasstFeatures are the options of one passt binary that loftd cares
// about, read from its --help (passt has no feature query, and Debian's
// 0.0~git20230309 prints "unknown version"); helper/passt probes them.
type PasstFeatures struct {
	Version string `json:"version"`
	// FD: --fd, a pre-opened connected socket (required).
	FD bool `json:"fd"`
	// MapHostLoopback, MapGuestAddr, DNSHost: the options of 2024-08 and
	// later; older releases map the gateway to the host's loopback
	// unless --no-map-gw.
	MapHostLoopback bool `json:"map_host_loopback"`
	MapGuestAddr    bool `json:"map_guest_addr"`
	DNSHost         bool `json:"dns_host"`
}

// String lists the features for doctor.
func (f PasstFeatures) String() string {
	var have []string
	for _, o := range []struct {
		name string
		ok   bool
	}{{"--fd", f.FD}, {"--map-host-loopback", f.MapHostLoopback}, {"--map-guest-addr", f.MapGuestAddr}, {"--dns-host", f.DNSHost}} {
		if o.ok {
			have = append(have, o.name)
		}
	}
	return fmt.Sprintf("version %s, options %s", f.Version, strings.Join(have, " "))
}

// Console says how the guest's stdio reaches the helper's.
type Console struct {
	// Interactive: stdin is a terminal (raw mode, window size changes).
	Interactive bool `json:"interactive"`
	// StdioPorts gives the guest's stdin, stdout and stderr their own
	// virtio-console ports (krun-stdin, -stdout, -stderr) on the helper's
	// fds 0, 1, 2 instead of libkrun's one implicit console (krun backend;
	// QEMU always uses such ports).
	StdioPorts bool `json:"stdio_ports,omitempty"`
}

// Validate reports the first field a helper could not boot with.
func (p *Plan) Validate() error {
	if p.Version != Version {
		return fmt.Errorf("launch plan version %d, this loftd reads version %d (remove the stale task directory)", p.Version, Version)
	}
	if p.VMM != VMMKrun && p.VMM != VMMQEMU {
		return fmt.Errorf("launch plan: vmm %q is not %s or %s", p.VMM, VMMKrun, VMMQEMU)
	}
	if p.Root == "" || !filepath.IsAbs(p.Root) {
		return fmt.Errorf("launch plan: root %q is not an absolute path", p.Root)
	}
	if p.ExecPath == "" {
		return fmt.Errorf("launch plan: exec_path is empty")
	}
	if p.VCPUs < 1 || p.RAMMiB < 64 {
		return fmt.Errorf("launch plan: %d vCPUs and %d MiB are below the minimum (1 vCPU, 64 MiB)", p.VCPUs, p.RAMMiB)
	}
	if p.VCPUs > MaxVCPUs {
		return fmt.Errorf("launch plan: %d vCPUs: more than the %d a VM can have", p.VCPUs, MaxVCPUs)
	}
	if _, err := confine.ParseMode(string(p.Sandbox)); err != nil {
		return fmt.Errorf("launch plan: %w", err)
	}
	if p.Virtiofsd != "" && p.VirtiofsdFlavor != VirtiofsdRust && p.VirtiofsdFlavor != VirtiofsdC {
		return fmt.Errorf("launch plan: virtiofsd %s has flavor %q, not %s or %s", p.Virtiofsd, p.VirtiofsdFlavor, VirtiofsdRust, VirtiofsdC)
	}
	return nil
}

// Write stores p as TASKDIR/launch.json, mode 0600 (it holds the user's
// environment), through a temporary file so a reader never sees half a plan.
func Write(taskDir string, p *Plan) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encode launch plan: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(taskDir, FileName), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write launch plan: %w", err)
	}
	return nil
}

// Read loads and validates TASKDIR/launch.json. Unknown fields are errors:
// the writer is this same binary.
func Read(taskDir string) (*Plan, error) {
	path := filepath.Join(taskDir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read launch plan: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decode launch plan %s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// Package contract is the host↔guest contract: the names, disk ids, virtiofs
// tags, paths and exit codes both sides agree on, and the typed form of the
// LOFTD_* environment the host passes in /.krun_config.json.
//
// It is the only part of guestinit that host may import, so it must stay free
// of anything that runs in the guest (no mounts, no syscalls) and import only
// the standard library.
package contract

import (
	"fmt"
	"strconv"
	"strings"
)

// Environment variable names carried in /.krun_config.json's Env.
const (
	EnvMode           = "LOFTD_MODE"
	EnvHostUID        = "LOFTD_HOST_UID"
	EnvHostGID        = "LOFTD_HOST_GID"
	EnvUser           = "LOFTD_USER"
	EnvRoot           = "LOFTD_ROOT"
	EnvWorkspaceTag   = "LOFTD_WORKSPACE_TAG"
	EnvNixDisk        = "LOFTD_NIX_DISK"
	EnvContainersDisk = "LOFTD_CONTAINERS_DISK"
	EnvNetwork        = "LOFTD_NETWORK"
	EnvResizeDisk     = "LOFTD_RESIZE_DISK"
	// EnvSnapshotOp and EnvSnapshotName: snapshot mode's work (save,
	// restore or rm) and snapshot; the disk is EnvResizeDisk's.
	EnvSnapshotOp   = "LOFTD_SNAPSHOT_OP"
	EnvSnapshotName = "LOFTD_SNAPSHOT_NAME"
	EnvProfile      = "LOFTD_PROFILE"
	// EnvTTY=1: the host's stdin is a terminal; under QEMU the guest runs
	// the workload on a pty relayed over the stdin and stdout ports.
	EnvTTY = "LOFTD_TTY"
	// EnvHostname is the guest's hostname (the workspace's name).
	EnvHostname = "LOFTD_HOSTNAME"
	// EnvWorkdir is the workload's working directory. Not the config's
	// WorkingDir: libkrun's init chdirs there before exec'ing the guest
	// init, before /workspace is mounted (init.c:1495-1497), so the config
	// says "/" and the guest init applies this one after its mounts.
	EnvWorkdir = "LOFTD_WORKDIR"
	// EnvTrust=1: the host put CA certificates at TrustPath (loftd's
	// interception CA, --extra-ca) for the guest's trust store.
	EnvTrust = "LOFTD_TRUST"
)

// The guest's passt network, the same on every run and both backends:
// passt is started with these (-a, -n, -g, --dns-forward) and the guest
// init configures eth0 with them. A connection to NetGateway reaches the
// host's loopback (passt's default on every release), which is what
// HostAliases name in the guest's /etc/hosts; DNS queries to NetDNS are
// forwarded to the host's resolver (a separate address, so the gateway's
// mapping never takes DNS with it).
const (
	NetAddress = "10.0.2.15"
	NetPrefix  = 24
	NetGateway = "10.0.2.2"
	NetDNS     = "10.0.2.3"
	NetDevice  = "eth0"
)

// HostAliases are the names of the host (its loopback) in the guest.
var HostAliases = []string{"host.containers.internal", "host.docker.internal"}

// Modes of the guest init.
const (
	ModeEnter  = "enter"
	ModeResize = "resize"
	// ModeSnapshot is the maintenance VM of an in-disk snapshot.
	ModeSnapshot = "snapshot"
	ModeCheck    = "check"
)

// Network modes. passt and egress (loftd's policy network) give the guest
// the same virtio-net device and the same addresses (NetAddress...).
const (
	NetworkPasst  = "passt"
	NetworkEgress = "egress"
	NetworkTSI    = "tsi"
	NetworkNone   = "none"
)

// Disk ids (virtio-blk serials) and the btrfs labels of the persistent disks.
const (
	NixDiskID        = "loftd-nix"
	ContainersDiskID = "loftd-containers"
	NixLabel         = "LOFTD_NIX"
	ContainersLabel  = "LOFTD_CONTAINERS"
)

// Virtiofs tags and guest paths.
const (
	// RootTag is the tag libkrun gives the root filesystem share; the QEMU
	// backend uses the same one so the guest cannot tell them apart.
	RootTag        = "/dev/root"
	WorkspaceTag   = "loftd-workspace"
	WorkspaceMount = "/workspace"
	// GuestInitPath is where the host injects the static guest init.
	GuestInitPath = "/.loftd/guest-init"
	// KrunConfigPath is libkrun's KRUN_CONFIG file, read by libkrun's
	// built-in init and by the guest init when it runs as PID 1 (QEMU).
	KrunConfigPath = "/.krun_config.json"
	// StatusPath is where the guest init leaves the workload's status
	// ("N\n") on the root share before it ends. libkrun's exit code is
	// not proof of one: when the guest dies first the VMM exits 0. The
	// host removes it before boot and, for libkrun's init, requires it.
	StatusPath = "/.loftd/status"
	// TrustPath holds the PEM certificates the guest init adds to the
	// image's CA bundles (with EnvTrust=1), written by the host.
	TrustPath   = "/.loftd/trust.pem"
	DefaultUser = "dev"
)

// Names of the virtio-serial ports that carry the workload's stdio. They are
// libkrun's names; StatusPort is loftd's own, used by the QEMU backend to
// carry the exit status out of the guest.
const (
	PortStdin  = "krun-stdin"
	PortStdout = "krun-stdout"
	PortStderr = "krun-stderr"
	PortStatus = "loftd-status"
)

// The loftd-status port is a control channel both ways. The guest init
// ends with one line "STATUS OUTBYTES ERRBYTES\n": the workload's status
// and how many bytes it wrote to the stdout and stderr ports. The host
// answers CtlAck once it has received that many bytes of each stream, and
// the guest ends the VM only then (what QEMU still holds when the guest
// reboots is lost). When writing a stream on the host fails (its reader is
// gone) the host sends CtlCloseStdout or CtlCloseStderr, and the guest
// closes that stream so the workload's next write fails with EPIPE.
const (
	CtlAck = "ack"
	// CtlStarted is the guest's first line on the status port, sent just
	// before the workload starts: a VM that ends without it never ran the
	// workload (the kernel died in early boot), so the host may boot it
	// again, and the host holds stdin back until it arrives.
	CtlStarted     = "started"
	CtlCloseStdout = "close stdout"
	CtlCloseStderr = "close stderr"
	// CtlWinsize, followed by " ROWS COLS", is the host terminal's size
	// (with EnvTTY): sent once at start and after every SIGWINCH; the guest
	// sets it on its pty, which signals the foreground process group.
	CtlWinsize = "winsize"
)

// WinsizeLine renders the CtlWinsize line (without the newline).
func WinsizeLine(rows, cols uint16) string {
	return fmt.Sprintf("%s %d %d", CtlWinsize, rows, cols)
}

// ParseWinsize reads a CtlWinsize line; ok is false for any other line.
func ParseWinsize(line string) (rows, cols uint16, ok bool) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != CtlWinsize {
		return 0, 0, false
	}
	r, err1 := strconv.ParseUint(f[1], 10, 16)
	c, err2 := strconv.ParseUint(f[2], 10, 16)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint16(r), uint16(c), true
}

// Exit codes with a meaning of their own (as a shell and libkrun's init use them).
const (
	ExitSetup         = 125
	ExitNotExecutable = 126
	ExitNotFound      = 127
	// ExitSignalBase + n is the status of a workload killed by signal n.
	ExitSignalBase = 128
)

// KrunConfig is libkrun's /.krun_config.json format. The guest init decodes
// it strictly: an unknown field means host and guest disagree on the format.
type KrunConfig struct {
	Cmd        []string `json:"Cmd"`
	Env        []string `json:"Env"`
	WorkingDir string   `json:"WorkingDir"`
}

// Guest is the typed LOFTD_* part of the guest environment.
type Guest struct {
	Mode           string
	UID, GID       int
	User           string
	Root           bool
	WorkspaceTag   string
	NixDisk        string
	ContainersDisk string
	Network        string
	ResizeDisk     string // resize and snapshot mode: the disk worked on
	SnapshotOp     string // save, restore or rm
	SnapshotName   string
	Profile        bool
	TTY            bool
	Hostname       string
	Workdir        string
	Trust          bool
	// Live workspaces (live.go).
	Hold        bool
	Detached    bool
	IdleTimeout int // seconds, 0: none
}

// Env renders g as NAME=VALUE entries, omitting empty optional values.
func (g Guest) Env() []string {
	env := []string{
		EnvMode + "=" + g.Mode,
		EnvHostUID + "=" + strconv.Itoa(g.UID),
		EnvHostGID + "=" + strconv.Itoa(g.GID),
		EnvUser + "=" + g.User,
	}
	add := func(name, value string) {
		if value != "" {
			env = append(env, name+"="+value)
		}
	}
	if g.Root {
		add(EnvRoot, "1")
	}
	add(EnvWorkspaceTag, g.WorkspaceTag)
	add(EnvNixDisk, g.NixDisk)
	add(EnvContainersDisk, g.ContainersDisk)
	add(EnvNetwork, g.Network)
	add(EnvResizeDisk, g.ResizeDisk)
	add(EnvSnapshotOp, g.SnapshotOp)
	add(EnvSnapshotName, g.SnapshotName)
	add(EnvHostname, g.Hostname)
	if g.Profile {
		add(EnvProfile, "1")
	}
	if g.TTY {
		add(EnvTTY, "1")
	}
	add(EnvWorkdir, g.Workdir)
	if g.Trust {
		add(EnvTrust, "1")
	}
	if g.Hold {
		add(EnvHold, "1")
	}
	if g.Detached {
		add(EnvDetached, "1")
	}
	if g.IdleTimeout > 0 {
		add(EnvIdleTimeout, strconv.Itoa(g.IdleTimeout))
	}
	return env
}

// Parse reads the LOFTD_* entries of env (NAME=VALUE form) and validates
// them. Entries that are not LOFTD_* are ignored: they belong to the workload.
func Parse(env []string) (Guest, error) {
	vals := map[string]string{}
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, "LOFTD_") {
			vals[name] = value
		}
	}
	g := Guest{
		Mode:           vals[EnvMode],
		User:           vals[EnvUser],
		Root:           vals[EnvRoot] == "1",
		WorkspaceTag:   vals[EnvWorkspaceTag],
		NixDisk:        vals[EnvNixDisk],
		ContainersDisk: vals[EnvContainersDisk],
		Network:        vals[EnvNetwork],
		ResizeDisk:     vals[EnvResizeDisk],
		SnapshotOp:     vals[EnvSnapshotOp],
		SnapshotName:   vals[EnvSnapshotName],
		Profile:        vals[EnvProfile] == "1",
		TTY:            vals[EnvTTY] == "1",
		Hostname:       vals[EnvHostname],
		Workdir:        vals[EnvWorkdir],
		Trust:          vals[EnvTrust] == "1",
		Hold:           vals[EnvHold] == "1",
		Detached:       vals[EnvDetached] == "1",
	}
	if s := vals[EnvIdleTimeout]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return Guest{}, fmt.Errorf("contract: %s=%q is not a non-negative number of seconds", EnvIdleTimeout, s)
		}
		g.IdleTimeout = n
	}
	if g.User == "" {
		g.User = DefaultUser
	}
	var err error
	if g.UID, err = parseID(vals, EnvHostUID); err != nil {
		return Guest{}, err
	}
	if g.GID, err = parseID(vals, EnvHostGID); err != nil {
		return Guest{}, err
	}
	return g, g.Validate()
}

func parseID(vals map[string]string, name string) (int, error) {
	s, ok := vals[name]
	if !ok || s == "" {
		return 1000, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("contract: %s=%q is not a non-negative integer", name, s)
	}
	return n, nil
}

// Validate reports the first inconsistency in g, naming the variable.
func (g Guest) Validate() error {
	switch g.Mode {
	case ModeEnter, ModeCheck:
	case ModeResize:
		if g.ResizeDisk != NixDiskID && g.ResizeDisk != ContainersDiskID {
			return fmt.Errorf("contract: %s=%s needs %s=%s or %s, got %q",
				EnvMode, ModeResize, EnvResizeDisk, NixDiskID, ContainersDiskID, g.ResizeDisk)
		}
	case ModeSnapshot:
		if g.ResizeDisk != NixDiskID && g.ResizeDisk != ContainersDiskID {
			return fmt.Errorf("contract: %s=%s needs %s=%s or %s, got %q",
				EnvMode, ModeSnapshot, EnvResizeDisk, NixDiskID, ContainersDiskID, g.ResizeDisk)
		}
		if (g.SnapshotOp != "save" && g.SnapshotOp != "restore" && g.SnapshotOp != "rm") || g.SnapshotName == "" {
			return fmt.Errorf("contract: %s=%s needs %s=save, restore or rm (got %q) and %s", EnvMode, ModeSnapshot, EnvSnapshotOp, g.SnapshotOp, EnvSnapshotName)
		}
	case "":
		return fmt.Errorf("contract: %s is not set (want %s, %s or %s)", EnvMode, ModeEnter, ModeResize, ModeCheck)
	default:
		return fmt.Errorf("contract: %s=%q is unknown (want %s, %s or %s)", EnvMode, g.Mode, ModeEnter, ModeResize, ModeCheck)
	}
	switch g.Network {
	case "", NetworkEgress, NetworkPasst, NetworkTSI, NetworkNone:
	default:
		return fmt.Errorf("contract: %s=%q is unknown (want %s, %s, %s or %s)", EnvNetwork, g.Network, NetworkEgress, NetworkPasst, NetworkTSI, NetworkNone)
	}
	if g.Workdir != "" && !strings.HasPrefix(g.Workdir, "/") {
		return fmt.Errorf("contract: %s=%q is not an absolute path", EnvWorkdir, g.Workdir)
	}
	if g.User == "" || strings.ContainsAny(g.User, ":/\n ,") {
		return fmt.Errorf("contract: %s=%q is not a valid user name", EnvUser, g.User)
	}
	if !validHostname(g.Hostname) {
		return fmt.Errorf("contract: %s=%q is not a hostname (want up to 64 of a-z, 0-9, - and .)", EnvHostname, g.Hostname)
	}
	return nil
}

// validHostname accepts "" (no hostname asked for) and what sethostname(2)
// and /etc/hosts both take: up to 64 bytes of letters, digits, '-' and '.',
// not starting with '-' or '.'.
func validHostname(h string) bool {
	if len(h) > 64 || strings.HasPrefix(h, "-") || strings.HasPrefix(h, ".") {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// HasNIC reports whether network mode m gives the guest a virtio-net
// device with the Net* addresses (passt, egress).
func HasNIC(m string) bool { return m == NetworkPasst || m == NetworkEgress }

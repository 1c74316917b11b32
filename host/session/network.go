package session

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/loftd/loftd/helper/passt"
	"github.com/loftd/loftd/internal/parts"
	"github.com/loftd/loftd/launch"
)

// checkPublishes refuses, at parse time, publishes the network mode
// cannot carry: none has no network, and libkrun's TSI port map only takes
// single TCP ports on every address (krun_set_port_map: "HOST:GUEST").
func checkPublishes(mode launch.NetworkMode, pms []PortMap) error {
	if err := checkPublishOverlaps(pms); err != nil {
		return err
	}
	for _, pm := range pms {
		switch mode {
		case launch.NetworkNone:
			return fmt.Errorf("--publish %s with --network none (or [network] mode = \"none\"): a guest without a network has no port to publish; drop one of them", pm)
		case launch.NetworkTSI:
			switch {
			case pm.Proto != launch.TCP:
				return fmt.Errorf("--publish %s with --tsi: libkrun's TSI port map carries TCP only; use passt (drop --tsi) for UDP", pm)
			case pm.HostFirst != pm.HostLast:
				return fmt.Errorf("--publish %s with --tsi: libkrun's TSI port map takes single ports, not ranges; use passt (drop --tsi) or list the ports", pm)
			case pm.HostIP != "":
				return fmt.Errorf("--publish %s with --tsi: libkrun's TSI port map cannot bind an address; drop %s or use passt (drop --tsi)", pm, pm.HostIP)
			}
		}
	}
	return nil
}

// checkHostPorts binds every published host port for a moment, so a port
// already in use fails before boot with its name instead of a guest whose
// service nobody can reach (passt only logs a failed bind).
func checkHostPorts(pms []PortMap) error {
	var errs []error
	for _, pm := range pms {
		for port := pm.HostFirst; port <= pm.HostLast; port++ {
			addr := net.JoinHostPort(pm.HostIP, strconv.Itoa(port))
			var err error
			if pm.Proto == launch.UDP {
				var c net.PacketConn
				if c, err = net.ListenPacket("udp", addr); err == nil {
					c.Close()
				}
			} else {
				var l net.Listener
				if l, err = net.Listen("tcp", addr); err == nil {
					l.Close()
				}
			}
			if err != nil {
				errs = append(errs, hostPortError(pm, addr, port, err, unprivilegedPortStart()))
			}
		}
	}
	return errors.Join(errs...)
}

// hostPortError says why publish pm cannot bind port at addr: below the
// privileged-port limit (start, net.ipv4.ip_unprivileged_port_start) a
// user's bind fails with EACCES, which is no busy port; else the port is
// taken.
func hostPortError(pm PortMap, addr string, port int, err error, start int) error {
	if errors.Is(err, syscall.EACCES) && port < start {
		other := port + 8000 // 80 → 8080, 443 → 8443
		if other < start || other > 65535 {
			other = start
		}
		return fmt.Errorf("--publish %s: host port %d is privileged: below net.ipv4.ip_unprivileged_port_start (%d) only root may bind it. Publish a port from %d up (-p %d:%d), or lower the limit: sudo sysctl net.ipv4.ip_unprivileged_port_start=%d", pm, port, start, start, other, pm.GuestFirst+port-pm.HostFirst, port)
	}
	return fmt.Errorf("--publish %s: host port %s/%s is not free (%v); stop what uses it or publish another host port", pm, addr, pm.Proto, unwrapOp(err))
}

// unprivilegedPortStart reads the kernel's first unprivileged port (1024
// when it cannot be read, the kernel's default).
func unprivilegedPortStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1024
	}
	return n
}

// checkPublishOverlaps refuses two publishes that would bind one host port:
// the same protocol, overlapping host ranges, and addresses that overlap
// (equal, or one of them every address). passt would bind the first and
// only log the second's failure.
func checkPublishOverlaps(pms []PortMap) error {
	for i, a := range pms {
		for _, b := range pms[:i] {
			if a.Proto != b.Proto || a.HostFirst > b.HostLast || b.HostFirst > a.HostLast || !addrsOverlap(a.HostIP, b.HostIP) {
				continue
			}
			first, last := max(a.HostFirst, b.HostFirst), min(a.HostLast, b.HostLast)
			return Usagef("--publish %s and --publish %s: host port %s/%s is published twice; a host port goes to one guest port: drop one or publish another host port", b, a, launch.Span(first, last), a.Proto)
		}
	}
	return nil
}

// addrsOverlap: "" (every address) and an unspecified address (0.0.0.0, ::)
// take the port on their addresses too.
func addrsOverlap(a, b string) bool {
	if a == b || a == "" || b == "" {
		return true
	}
	pa, errA := netip.ParseAddr(a)
	pb, errB := netip.ParseAddr(b)
	if errA != nil || errB != nil {
		return false
	}
	pa, pb = pa.Unmap(), pb.Unmap()
	switch {
	case pa == pb:
		return true
	case pa.IsUnspecified() && pa.Is6():
		return true // :: is dual-stack on Linux
	case pb.IsUnspecified() && pb.Is6():
		return true
	case pa.IsUnspecified() || pb.IsUnspecified():
		return pa.Is4() == pb.Is4()
	}
	return false
}

// unwrapOp drops net.OpError's "listen tcp ADDR:" prefix (the message
// names the port already).
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// planNetwork is the plan's network for backend vmm (krun or qemu): the
// publishes as typed values (each backend renders its own syntax) and, for
// passt, the binary as found and probed here, once (cacheDir keeps the
// probe).
func planNetwork(o *Options, vmm launch.VMM, cacheDir string) (launch.Network, error) {
	switch o.Network {
	case launch.NetworkNone:
		return launch.Network{Mode: launch.NetworkNone}, nil
	case launch.NetworkEgress:
		return planEgress(o)
	case launch.NetworkTSI:
		if vmm != launch.VMMKrun {
			return launch.Network{}, fmt.Errorf("--tsi (or [network] mode = \"tsi\"): TSI is libkrun's (transparent socket impersonation); the %s backend has no such thing. Drop --tsi for passt networking, or use --vmm krun with libkrun installed", vmm)
		}
		n := launch.Network{Mode: launch.NetworkTSI, Publish: o.Publish}
		return n, checkHostPorts(o.Publish)
	}
	f, feat, err := FindPasst(cacheDir)
	if err != nil {
		return launch.Network{}, fmt.Errorf("guest network: %w; or run without a network: --network none", err)
	}
	n := launch.Network{Mode: launch.NetworkPasst, Publish: o.Publish, Passt: &launch.Passt{Path: f.Path, Features: feat}}
	if err := checkHostPorts(o.Publish); err != nil {
		return launch.Network{}, err
	}
	if err := checkPasstTCP(o.Publish, f, feat); err != nil {
		return launch.Network{}, err
	}
	return n, nil
}

// checkPasstTCP refuses TCP publishes on a passt that cannot carry them.
// Measured with Debian 12's passt (0.0~git20230309): it takes the host's
// connection and sends the guest its SYN, the guest answers, and passt
// never completes the handshake (with -d, or without -4, it crashes in
// libc on the first connection). A published port that never answers is
// worse than a clear refusal. passt of 2024-08 or later (the release that
// added --map-host-loopback, the marker loftd reads from --help) carries
// them: e2e TestPublish runs Debian 13's.
func checkPasstTCP(pms []PortMap, f parts.Found, feat passt.Features) error {
	var tcp []string
	for _, pm := range pms {
		if pm.Proto == launch.TCP {
			tcp = append(tcp, pm.String())
		}
	}
	if len(tcp) == 0 || feat.MapHostLoopback {
		return nil
	}
	return fmt.Errorf("--publish %s: this passt (%s, version %s) does not complete TCP connections into the guest (Debian 12's does not): %s; or publish UDP only", strings.Join(tcp, ", "), f, feat.Version, PasstTCPHint)
}

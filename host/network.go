package host

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/loftd/loftd/internal/parts"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/vmm/passt"
)

// checkPublishes refuses, at parse time, publishes the network mode
// cannot carry: none has no network, and libkrun's TSI port map only takes
// single TCP ports on every address (krun_set_port_map: "HOST:GUEST").
func checkPublishes(mode string, pms []PortMap) error {
	for _, pm := range pms {
		switch mode {
		case "none":
			return fmt.Errorf("--publish %s with --network none (or [network] mode = \"none\"): a guest without a network has no port to publish; drop one of them", pm)
		case "tsi":
			switch {
			case pm.Proto != "tcp":
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

// String is the publish as the user wrote it (normalized).
func (pm PortMap) String() string {
	var b strings.Builder
	if pm.HostIP != "" {
		if strings.Contains(pm.HostIP, ":") {
			b.WriteString("[" + pm.HostIP + "]:")
		} else {
			b.WriteString(pm.HostIP + ":")
		}
	}
	b.WriteString(span(pm.HostFirst, pm.HostLast) + ":" + span(pm.GuestFirst, pm.GuestLast) + "/" + pm.Proto)
	return b.String()
}

func span(first, last int) string {
	if first == last {
		return strconv.Itoa(first)
	}
	return fmt.Sprintf("%d-%d", first, last)
}

// PasstSpec renders the publish as a passt -t/-u spec:
// [ADDR/]HOST[-LAST]:GUEST[-LAST].
func (pm PortMap) PasstSpec() string {
	s := span(pm.HostFirst, pm.HostLast) + ":" + span(pm.GuestFirst, pm.GuestLast)
	if pm.HostIP != "" {
		s = pm.HostIP + "/" + s
	}
	return s
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
			if pm.Proto == "udp" {
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
				errs = append(errs, fmt.Errorf("--publish %s: host port %s/%s is not free (%v); stop what uses it or publish another host port", pm, addr, pm.Proto, unwrapOp(err)))
			}
		}
	}
	return errors.Join(errs...)
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

// network is the plan's network for backend vmm ("krun" or "qemu").
func (s *session) network(vmm string) (launch.Network, error) {
	o := s.opts
	switch o.Network {
	case "none":
		return launch.Network{Mode: "none"}, nil
	case "tsi":
		if vmm != "krun" {
			return launch.Network{}, fmt.Errorf("--tsi (or [network] mode = \"tsi\"): TSI is libkrun's (transparent socket impersonation); the %s backend has no such thing. Drop --tsi for passt networking, or use --vmm krun with libkrun installed", vmm)
		}
		n := launch.Network{Mode: "tsi", PortMap: []string{}}
		for _, pm := range o.Publish {
			n.PortMap = append(n.PortMap, pm.KrunPairs()...)
		}
		return n, checkHostPorts(o.Publish)
	}
	f, feat, err := findPasst(s.state.Kernels())
	if err != nil {
		return launch.Network{}, fmt.Errorf("guest network: %w; or run without a network: --network none", err)
	}
	n := launch.Network{Mode: "passt", Passt: f.Path}
	if err := checkHostPorts(o.Publish); err != nil {
		return launch.Network{}, err
	}
	if err := checkPasstTCP(o.Publish, f, feat); err != nil {
		return launch.Network{}, err
	}
	for _, pm := range o.Publish {
		if pm.Proto == "udp" {
			n.UDP = append(n.UDP, pm.PasstSpec())
		} else {
			n.TCP = append(n.TCP, pm.PasstSpec())
		}
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
		if pm.Proto != "udp" {
			tcp = append(tcp, pm.String())
		}
	}
	if len(tcp) == 0 || feat.MapHostLoopback {
		return nil
	}
	return fmt.Errorf("--publish %s: this passt (%s, version %s) does not complete TCP connections into the guest (Debian 12's does not): %s; or publish UDP only", strings.Join(tcp, ", "), f, feat.Version, passtTCPHint)
}

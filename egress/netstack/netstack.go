// Package netstack is the guest's user-mode network under the egress
// policy: a gVisor TCP/IP stack (through github.com/containers/gvisor-tap-vsock's
// switch and link endpoint) on the VMM's end of a stream socket in QEMU's
// framing (4-byte length, then the frame), which QEMU's -netdev stream and
// libkrun's unixstream both speak. It plays the guest's gateway
// (contract.NetGateway, the host's loopback when --allow-host) and DNS
// server (contract.NetDNS, served by egress/dns); every TCP connection is
// decided by egress.Policy before it leaves, its TLS SNI or HTTP Host
// checked against the name its address was learned for; every UDP
// datagram but DNS to that resolver is dropped (so QUIC is refused, and
// falls back to TCP). The stack has no IPv6: the guest's IPv6 goes
// nowhere. It runs in its own process (`loftd internal netstack`); it
// must not import host or helper.
package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"

	"github.com/containers/gvisor-tap-vsock/pkg/services/forwarder"
	"github.com/containers/gvisor-tap-vsock/pkg/tap"
	"github.com/containers/gvisor-tap-vsock/pkg/types"
	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/egress"
	edns "github.com/loftd/loftd/egress/dns"
	mdns "github.com/miekg/dns"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Interceptor takes over TCP connections the policy allowed (TLS
// interception for secrets, egress/mitm). The method set is mitm's.
type Interceptor interface {
	// Wants reports whether a connection to name:port must go through Serve.
	Wants(name string, port uint16) bool
	// Serve takes over the guest's side (sniffed bytes replayed) and
	// reaches the real server through dial.
	Serve(ctx context.Context, guest net.Conn, name string, dial func(ctx context.Context) (net.Conn, error)) error
}

// Publish is one host port forwarded to a guest port.
type Publish struct {
	UDP       bool
	HostIP    string // "" every address
	HostPort  uint16
	GuestPort uint16
}

// Config is one VM's network.
type Config struct {
	Policy *egress.Policy
	Denied *egress.Log
	// Upstream is the host's resolver (host:port) for allowed names.
	Upstream    string
	Publish     []Publish
	Interceptor Interceptor // nil: none
	Log         *slog.Logger
	// HostLoopback is where the gateway's connections go (127.0.0.1
	// when empty; tests point it elsewhere).
	HostLoopback netip.Addr
}

const (
	nicID = 1
	mtu   = 1500
	// gatewayMAC is the stack's MAC on the guest's link (passt's is
	// 9a:55:9a:55:9a:55; any locally administered one does).
	gatewayMAC = "5a:94:ef:e4:0c:dd"
)

// Net is a running stack.
type Net struct {
	cfg Config
	s   *stack.Stack
	sw  *tap.Switch
}

// New builds the stack and its services; Serve then carries the VM's
// frames.
func New(cfg Config) (*Net, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Denied == nil {
		cfg.Denied = &egress.Log{}
	}
	if !cfg.HostLoopback.IsValid() {
		cfg.HostLoopback = netip.MustParseAddr("127.0.0.1")
	}
	link, err := tap.NewLinkEndpoint(false, mtu, gatewayMAC, contract.NetGateway, []string{contract.NetDNS})
	if err != nil {
		return nil, fmt.Errorf("netstack link: %w", err)
	}
	sw := tap.NewSwitch(false)
	link.Connect(sw)
	sw.Connect(link)
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	n := &Net{cfg: cfg, s: s, sw: sw}
	if err := n.configure(link); err != nil {
		s.Destroy()
		return nil, err
	}
	return n, nil
}

func tcpipErr(op string, e tcpip.Error) error {
	if e == nil {
		return nil
	}
	return fmt.Errorf("netstack %s: %s", op, e)
}

func addr4(s string) tcpip.Address { return tcpip.AddrFrom4(netip.MustParseAddr(s).As4()) }

func (n *Net) configure(link stack.LinkEndpoint) error {
	s := n.s
	if err := tcpipErr("create nic", s.CreateNIC(nicID, link)); err != nil {
		return err
	}
	for _, a := range []string{contract.NetGateway, contract.NetDNS} {
		pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: addr4(a).WithPrefix()}
		if err := tcpipErr("address "+a, s.AddProtocolAddress(nicID, pa, stack.AddressProperties{})); err != nil {
			return err
		}
	}
	// Spoofing and promiscuous mode: the stack answers for every
	// destination the guest sends to, so the forwarders see them all.
	if err := tcpipErr("spoofing", s.SetSpoofing(nicID, true)); err != nil {
		return err
	}
	if err := tcpipErr("promiscuous", s.SetPromiscuousMode(nicID, true)); err != nil {
		return err
	}
	subnet := netip.MustParsePrefix(contract.NetAddress + "/" + strconv.Itoa(contract.NetPrefix)).Masked()
	sn, err := tcpip.NewSubnet(addr4(subnet.Addr().String()), tcpip.MaskFromBytes(net.CIDRMask(subnet.Bits(), 32)))
	if err != nil {
		return fmt.Errorf("netstack subnet: %w", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: sn, NIC: nicID}})
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, tcp.NewForwarder(s, 0, 512, n.forwardTCP).HandlePacket)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, udp.NewForwarder(s, n.dropUDP).HandlePacket)
	if err := n.serveDNS(); err != nil {
		return err
	}
	return n.publish()
}

// serveDNS answers on the guest's DNS address, UDP and TCP port 53.
func (n *Net) serveDNS() error {
	r := &edns.Resolver{Policy: n.cfg.Policy, Denied: n.cfg.Denied, Upstream: n.cfg.Upstream, Log: n.cfg.Log}
	full := tcpip.FullAddress{NIC: nicID, Addr: addr4(contract.NetDNS), Port: 53}
	pc, err := gonet.DialUDP(n.s, &full, nil, ipv4.ProtocolNumber)
	if err != nil {
		return fmt.Errorf("netstack dns udp: %w", err)
	}
	ln, err := gonet.ListenTCP(n.s, full, ipv4.ProtocolNumber)
	if err != nil {
		return fmt.Errorf("netstack dns tcp: %w", err)
	}
	go func() {
		if err := r.ServeUDP(pc); err != nil {
			n.cfg.Log.Debug("dns udp server", "err", err)
		}
	}()
	srv := &mdns.Server{Listener: ln, Handler: r}
	go func() {
		if err := srv.ActivateAndServe(); err != nil {
			n.cfg.Log.Debug("dns tcp server", "err", err)
		}
	}()
	return nil
}

// publish forwards the host's published ports to the guest's address.
func (n *Net) publish() error {
	fw := forwarder.NewPortsForwarder(n.s)
	for _, p := range n.cfg.Publish {
		host := p.HostIP
		if host == "" {
			host = "0.0.0.0"
		}
		local := net.JoinHostPort(host, strconv.Itoa(int(p.HostPort)))
		remote := net.JoinHostPort(contract.NetAddress, strconv.Itoa(int(p.GuestPort)))
		proto := types.TCP
		if p.UDP {
			proto = types.UDP
		}
		if err := fw.Expose(proto, local, remote); err != nil {
			return fmt.Errorf("publish %s/%s: %w", local, proto, err)
		}
	}
	return nil
}

// Serve carries the VM's frames on conn (QEMU's stream framing) until it
// closes or ctx ends.
func (n *Net) Serve(ctx context.Context, conn net.Conn) error {
	err := n.sw.Accept(ctx, conn, types.QemuProtocol)
	if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || ctx.Err() != nil) {
		return nil // the VM's end closed: the VM is gone
	}
	return err
}

// Close stops the stack.
func (n *Net) Close() { n.s.Close() }

func netipAddr(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip.Unmap()
}

// dropUDP drops every datagram the resolver's own endpoint did not take.
func (n *Net) dropUDP(r *udp.ForwarderRequest) {
	id := r.ID()
	n.cfg.Denied.Add(egress.Denial{Proto: egress.UDP, Addr: netipAddr(id.LocalAddress).String(), Port: id.LocalPort, Reason: egress.UDPDenied})
}

// Package testnet builds a small "internet" for tests out of network
// namespaces and veth links: a client namespace (where loftd runs), a router
// namespace, and one namespace per server host, each with HTTP and HTTPS echo
// servers whose certificates a per-network test CA signs, plus a DNS server
// for the test names. Nothing leaves the machine: the public-looking
// addresses below exist only inside the test's namespaces, which have no
// link to the host's network.
//
// The test process itself stays in its own namespace; it opens sockets in the
// others from a thread that has joined them (a socket keeps the namespace it
// was made in), and runs commands in the client namespace with
// `ip netns exec`, which also puts the test DNS into /etc/resolv.conf
// (iproute2's /etc/netns/NAME/ convention). Everything is removed when the
// test ends. It needs root and iproute2; it imports nothing of loftd but
// internal/testenv.
package testnet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"golang.org/x/sys/unix"
)

// The test names. Each resolves through the test DNS to its host's addresses.
const (
	Allowed   = "allowed.test"   // a public-looking host, IPv4 and IPv6
	Denied    = "denied.test"    // another public-looking host, IPv4 and IPv6
	CDNA      = "cdn-a.test"     // two names on one shared "CDN" address, one
	CDNB      = "cdn-b.test"     // server presenting a certificate for both
	Untrusted = "untrusted.test" // a host whose certificate another CA signed
	Internal  = "internal.test"  // a host on a private (RFC 1918) address
	Metadata  = "metadata.test"  // a host on 169.254.169.254 (link-local)
)

// The test's addresses. 11.0.0.0/8 is globally routed unicast (no special
// purpose, so a policy treats it as public) and 2a0b:4d07::/32 likewise; both
// exist here only inside the test's namespaces.
var (
	DNSAddr      = netip.MustParseAddr("11.0.53.53") // the test resolver
	OtherDNSAddr = netip.MustParseAddr("11.0.53.54") // "another resolver", same answers
	// ClientAddr is the client namespace's own address; its router is .1.
	ClientAddr  = netip.MustParseAddr("192.168.200.2")
	ClientAddr6 = netip.MustParseAddr("fd00:200::2")
)

// hostSpec is one server host: its role (the namespace's and the echo's
// name), DNS names and addresses, each address the .10 (::10) of its own
// /24 (/64) whose .1 (::1) is the router.
type hostSpec struct {
	role      string
	names     []string
	addrs     []netip.Addr
	untrusted bool // certificate from a CA nobody trusts
	web       bool // HTTP :80 and HTTPS :443 echo servers
	dns       bool // the DNS server, UDP and TCP :53
}

var hostSpecs = []hostSpec{
	{role: "allowed", names: []string{Allowed}, addrs: addrs("11.0.1.10", "2a0b:4d07:1::10"), web: true},
	{role: "denied", names: []string{Denied}, addrs: addrs("11.0.2.10", "2a0b:4d07:2::10"), web: true},
	{role: "cdn", names: []string{CDNA, CDNB}, addrs: addrs("11.0.3.10", "2a0b:4d07:3::10"), web: true},
	{role: "untrusted", names: []string{Untrusted}, addrs: addrs("11.0.4.10"), web: true, untrusted: true},
	{role: "internal", names: []string{Internal}, addrs: addrs("10.20.0.10"), web: true},
	{role: "linklocal", names: []string{Metadata}, addrs: addrs("169.254.169.254"), web: true},
	{role: "dns", addrs: []netip.Addr{DNSAddr, OtherDNSAddr}, dns: true},
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// Net is one test internet. Its fields are read-only.
type Net struct {
	// Client is the client namespace's name, for `ip netns exec` and /run/netns.
	Client string
	// CAFile is the test CA's certificate (PEM), e.g. for loftd's --extra-ca;
	// CAPEM is its content and Roots a pool holding only it.
	CAFile string
	CAPEM  []byte
	Roots  *x509.CertPool
	// DNS and OtherDNS are the test resolver and a second one on another
	// address that answers the same; the client's resolv.conf names DNS.
	DNS, OtherDNS netip.AddrPort
	// Loopback is a plain-HTTP echo server on the client namespace's
	// 127.0.0.1, the "host's loopback service" a guest must not reach by default.
	Loopback netip.AddrPort

	ip     string
	zone   zone
	roles  map[string]string // DNS name → role
	logs   map[string]*echoLog
	etcDir string
}

var seq atomic.Int64

// nsPrefix starts every namespace name a test internet makes, followed by
// the test process's pid.
const nsPrefix = "loftdtn"

// removeStale deletes the namespaces (and /etc/netns directories) of test
// internets whose test process is gone: one killed before its cleanup ran
// would otherwise leave them until reboot.
func removeStale(t testing.TB, ip string) {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(rest[:max(0, strings.IndexByte(rest, '-'))])
		if err != nil || pid == os.Getpid() || !errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			continue
		}
		if err := ipCmd(ip, "netns", "del", e.Name()); err != nil {
			t.Logf("testnet: stale namespace: %v", err)
		}
		_ = os.RemoveAll(filepath.Join("/etc/netns", e.Name()))
	}
}

// New builds a test internet and removes it when t ends. It needs root and
// iproute2, and skips (fails in CI) without them.
func New(t testing.TB) *Net {
	t.Helper()
	testenv.RequireRoot(t)
	ip := testenv.RequireCommand(t, "ip", "iproute2")
	removeStale(t, ip)
	prefix := fmt.Sprintf("%s%d-%d-", nsPrefix, os.Getpid(), seq.Add(1))
	n := &Net{
		Client:   prefix + "client",
		ip:       ip,
		zone:     zone{},
		roles:    map[string]string{},
		logs:     map[string]*echoLog{"loopback": {}},
		DNS:      netip.AddrPortFrom(DNSAddr, 53),
		OtherDNS: netip.AddrPortFrom(OtherDNSAddr, 53),
	}
	ca, err := newTestCA("loftd testnet CA")
	if err != nil {
		t.Fatal(err)
	}
	n.CAPEM = ca.pem
	n.Roots = x509.NewCertPool()
	n.Roots.AddCert(ca.cert)
	n.CAFile = filepath.Join(t.TempDir(), "testnet-ca.pem")
	if err := os.WriteFile(n.CAFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	rogue, err := newTestCA("loftd testnet untrusted CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.build(t, prefix); err != nil {
		t.Fatalf("testnet: %v", err)
	}
	if err := n.startServers(t, prefix, ca, rogue); err != nil {
		t.Fatalf("testnet: %v", err)
	}
	return n
}

// build makes the namespaces, links, addresses and routes. Cleanup is
// registered per namespace as it is made, so a failure half-way leaves nothing.
func (n *Net) build(t testing.TB, prefix string) error {
	router := prefix + "router"
	add := func(name string) error {
		if err := ipCmd(n.ip, "netns", "add", name); err != nil {
			return err
		}
		t.Cleanup(func() {
			if err := ipCmd(n.ip, "netns", "del", name); err != nil {
				t.Errorf("testnet cleanup: %v", err)
			}
		})
		return ipCmd(n.ip, "-n", name, "link", "set", "lo", "up")
	}
	if err := add(router); err != nil {
		return err
	}
	if err := add(n.Client); err != nil {
		return err
	}
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if err := writeSysctl(router, k, "1"); err != nil {
			return err
		}
	}
	if err := n.link(router, "c0", n.Client, []netip.Prefix{
		netip.PrefixFrom(ClientAddr, 24), netip.PrefixFrom(ClientAddr6, 64)}); err != nil {
		return err
	}
	for _, h := range hostSpecs {
		ns := prefix + h.role
		if err := add(ns); err != nil {
			return err
		}
		var ps []netip.Prefix
		for _, a := range h.addrs {
			bits := 24
			if a.Is6() {
				bits = 64
			}
			ps = append(ps, netip.PrefixFrom(a, bits))
		}
		if err := n.link(router, "h-"+h.role, ns, ps); err != nil {
			return err
		}
	}
	return n.writeResolvConf(t)
}

// link joins ns to the router with a veth pair: ns gets the addresses
// (eth0), the router the first address of each prefix, and ns a default
// route through it. Addresses skip IPv6 duplicate detection so they serve at once.
func (n *Net) link(router, routerIf, ns string, ps []netip.Prefix) error {
	if err := ipCmd(n.ip, "-n", router, "link", "add", routerIf, "type", "veth", "peer", "name", "eth0", "netns", ns); err != nil {
		return err
	}
	addAddr := func(ns, dev string, p netip.Prefix) error {
		args := []string{"-n", ns, "addr", "add", p.String(), "dev", dev}
		if p.Addr().Is6() {
			args = append(args, "nodad")
		}
		return ipCmd(n.ip, args...)
	}
	var gws []netip.Addr // the router's side: one per subnet
	for _, p := range ps {
		gw := p.Masked().Addr().Next()
		if !slices.Contains(gws, gw) {
			gws = append(gws, gw)
			if err := addAddr(router, routerIf, netip.PrefixFrom(gw, p.Bits())); err != nil {
				return err
			}
		}
		if err := addAddr(ns, "eth0", p); err != nil {
			return err
		}
	}
	if err := ipCmd(n.ip, "-n", router, "link", "set", routerIf, "up"); err != nil {
		return err
	}
	if err := ipCmd(n.ip, "-n", ns, "link", "set", "eth0", "up"); err != nil {
		return err
	}
	routed := map[bool]bool{} // one default route per family
	for _, gw := range gws {
		if routed[gw.Is4()] {
			continue
		}
		routed[gw.Is4()] = true
		if err := ipCmd(n.ip, "-n", ns, "route", "add", "default", "via", gw.String(), "dev", "eth0"); err != nil {
			return err
		}
	}
	return nil
}

// writeResolvConf points the client namespace's resolver at the test DNS:
// `ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf on /etc/resolv.conf.
func (n *Net) writeResolvConf(t testing.TB) error {
	n.etcDir = filepath.Join("/etc/netns", n.Client)
	if err := os.MkdirAll(n.etcDir, 0o755); err != nil {
		return fmt.Errorf("resolv.conf for netns %s: %w", n.Client, err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(n.etcDir) })
	conf := fmt.Sprintf("nameserver %s\noptions timeout:2 attempts:2\n", DNSAddr)
	return os.WriteFile(filepath.Join(n.etcDir, "resolv.conf"), []byte(conf), 0o644)
}

// startServers starts every host's servers and the client's loopback echo,
// and stops them when the test ends (before the namespaces go).
func (n *Net) startServers(t testing.TB, prefix string, ca, rogue *testCA) error {
	for _, h := range hostSpecs {
		ns := prefix + h.role
		for _, name := range h.names {
			n.zone[name+"."] = h.addrs
			n.roles[name] = h.role
		}
		if h.dns {
			for _, a := range h.addrs {
				ap := netip.AddrPortFrom(a, 53).String()
				pc, err := packetIn(ns, "udp", ap)
				if err != nil {
					return err
				}
				l, err := listenIn(ns, "tcp", ap)
				if err != nil {
					pc.Close()
					return err
				}
				for _, s := range serveDNS(pc, l, n.zone) {
					t.Cleanup(func() { _ = s.Shutdown() })
				}
			}
		}
		if !h.web {
			continue
		}
		issuer := ca
		if h.untrusted {
			issuer = rogue
		}
		var ips []net.IP
		for _, a := range h.addrs {
			ips = append(ips, a.AsSlice())
		}
		cert, err := issuer.leaf(h.names, ips)
		if err != nil {
			return err
		}
		log := &echoLog{}
		n.logs[h.role] = log
		for _, a := range h.addrs {
			for port, c := range map[uint16]*tls.Certificate{80: nil, 443: &cert} {
				l, err := listenIn(ns, "tcp", netip.AddrPortFrom(a, port).String())
				if err != nil {
					return err
				}
				s := serveEcho(l, h.role, log, c)
				t.Cleanup(func() { _ = s.Close() })
			}
		}
	}
	l, err := listenIn(n.Client, "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	n.Loopback = l.Addr().(*net.TCPAddr).AddrPort()
	s := serveEcho(l, "loopback", n.logs["loopback"], nil)
	t.Cleanup(func() { _ = s.Close() })
	return nil
}

// Addrs returns the addresses the test DNS gives name (nil for an unknown name).
func (n *Net) Addrs(name string) []netip.Addr {
	return append([]netip.Addr(nil), n.zone[name+"."]...)
}

// Seen returns the requests the echo servers of name's host got so far
// (name is a test name, or "loopback" for the client's loopback service).
func (n *Net) Seen(name string) []Echo {
	role := name
	if r, ok := n.roles[name]; ok {
		role = r
	}
	if l, ok := n.logs[role]; ok {
		return l.list()
	}
	return nil
}

// Dial connects from the client namespace, as a process there would.
// address must be a literal IP and port.
func (n *Net) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return dialIn(ctx, n.Client, network, address)
}

// Listen opens a listener in the client namespace (a service "on the host").
func (n *Net) Listen(network, address string) (net.Listener, error) {
	return listenIn(n.Client, network, address)
}

// HTTPClient returns a client that connects from the client namespace and
// finds a test name's address from the test zone (the first one, IPv4 before
// IPv6 as listed), trusting roots for HTTPS (nil: the test CA).
func (n *Net) HTTPClient(roots *x509.CertPool) *http.Client {
	if roots == nil {
		roots = n.Roots
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			if as := n.zone[host+"."]; len(as) > 0 {
				address = net.JoinHostPort(as[0].String(), port)
			}
			return n.Dial(ctx, network, address)
		},
	}
	return &http.Client{Transport: tr}
}

// Command returns a command that runs in the client namespace, with the
// test DNS as its resolver (`ip netns exec`).
func (n *Net) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, n.ip, append([]string{"netns", "exec", n.Client, name}, args...)...)
}

package netstack

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/egress"
	mdns "github.com/miekg/dns"
)

// hostEcho serves "hi" on 127.0.0.1 (the host's loopback service).
func hostEcho(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hi")
			c.Close()
		}
	}()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// upstreamDNS answers allowed.test and denied.test with documentation
// addresses on a real UDP socket of the loopback.
func upstreamDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, q *mdns.Msg) {
		m := new(mdns.Msg).SetReply(q)
		if q.Question[0].Qtype == mdns.TypeA {
			rr, _ := mdns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.10")
			m.Answer = append(m.Answer, rr)
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func newNet(t *testing.T, rules egress.Rules) (*guest, *egress.Log) {
	t.Helper()
	denied := &egress.Log{}
	n, err := New(Config{Policy: egress.New(rules), Denied: denied, Upstream: upstreamDNS(t), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return newGuest(t, n), denied
}

// TCP from a guest stack through the Net: the host's loopback only with
// --allow-host, private and link-local addresses refused with a reset,
// each refusal in the log with its reason.
func TestForwardTCP(t *testing.T) {
	port := hostEcho(t)
	gw := netip.AddrPortFrom(netip.MustParseAddr(contract.NetGateway), port)
	for _, tt := range []struct {
		name  string
		rules egress.Rules
		to    netip.AddrPort
		want  egress.Reason
	}{
		{"host loopback by default", egress.Rules{}, gw, egress.HostLoopback},
		{"host loopback with --allow-host", egress.Rules{AllowHost: true}, gw, egress.Allowed},
		{"link-local", egress.Rules{AllowHost: true}, netip.MustParseAddrPort("169.254.169.254:80"), egress.LinkLocal},
		{"private", egress.Rules{}, netip.MustParseAddrPort("10.1.2.3:80"), egress.PrivateRange},
		{"the resolver's other ports", egress.Rules{}, netip.MustParseAddrPort(contract.NetDNS + ":80"), egress.Reserved},
		{"never learned, allow-list", egress.Rules{Names: []string{"allowed.test"}}, netip.MustParseAddrPort("192.0.2.10:443"), egress.NotLearned},
	} {
		g, denied := newNet(t, tt.rules)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := g.dial(ctx, tt.to)
		cancel()
		if tt.want == egress.Allowed {
			if err != nil {
				t.Errorf("%s: dial %s: %v, want a connection", tt.name, tt.to, err)
				continue
			}
			got, _ := io.ReadAll(c)
			c.Close()
			if string(got) != "hi" {
				t.Errorf("%s: read %q, want the host's \"hi\"", tt.name, got)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%s: dial %s = %v, want connection refused", tt.name, tt.to, err)
		}
		if s := denied.Summary(); !strings.Contains(s, string(tt.want)) {
			t.Errorf("%s: denials %q, want %q", tt.name, s, tt.want)
		}
	}
}

// DNS through the Net's resolver: an allowed name answered (and its
// address then reachable by policy), a denied one NXDOMAIN; UDP to any
// other address dropped and logged.
func TestResolverAndUDP(t *testing.T) {
	g, denied := newNet(t, egress.Rules{Names: []string{"allowed.test"}})
	ask := func(server netip.AddrPort, name string) (*mdns.Msg, error) {
		c, err := g.udp(server)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		co := &mdns.Conn{Conn: c}
		co.SetDeadline(time.Now().Add(2 * time.Second))
		if err := co.WriteMsg(new(mdns.Msg).SetQuestion(name, mdns.TypeA)); err != nil {
			return nil, err
		}
		return co.ReadMsg()
	}
	resolver := netip.MustParseAddrPort(contract.NetDNS + ":53")
	if m, err := ask(resolver, "allowed.test."); err != nil || m.Rcode != mdns.RcodeSuccess || len(m.Answer) != 1 {
		t.Errorf("allowed.test through the resolver: %v, %v; want one answer", m, err)
	}
	if m, err := ask(resolver, "denied.test."); err != nil || m.Rcode != mdns.RcodeNameError {
		t.Errorf("denied.test through the resolver: %v, %v; want NXDOMAIN", m, err)
	}
	// DNS over TCP reaches the same resolver (a truncated answer's retry).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tc, err := g.dial(ctx, resolver)
	if err != nil {
		t.Fatalf("dns over tcp: %v", err)
	}
	co := &mdns.Conn{Conn: tc}
	co.SetDeadline(time.Now().Add(5 * time.Second))
	if err := co.WriteMsg(new(mdns.Msg).SetQuestion("allowed.test.", mdns.TypeA)); err != nil {
		t.Fatal(err)
	}
	if m, err := co.ReadMsg(); err != nil || len(m.Answer) != 1 {
		t.Errorf("allowed.test over TCP: %v, %v; want one answer", m, err)
	}
	tc.Close()
	if m, err := ask(netip.MustParseAddrPort("192.0.2.53:53"), "allowed.test."); err == nil {
		t.Errorf("another resolver answered: %v", m)
	}
	s := denied.Summary()
	for _, want := range []string{"denied.test/dns: " + string(egress.NameDenied), "192.0.2.53 port 53/udp: " + string(egress.UDPDenied)} {
		if !strings.Contains(s, want) {
			t.Errorf("denials %q lack %q", s, want)
		}
	}
}

// noIntercept is an interceptor that wants nothing: it sends every
// connection through the sniffing path, then straight to the server.
type noIntercept struct{ asked chan string }

func (n noIntercept) Wants(name string, port uint16) bool { n.asked <- name; return false }
func (noIntercept) Serve(context.Context, net.Conn, string, func(context.Context) (net.Conn, error)) error {
	panic("Serve called for a connection Wants refused")
}

// A server that speaks first (SSH's banner) gets through the sniffing
// path once its wait for the client's first bytes ends, and the bytes go
// both ways unchanged; the interceptor is asked about the unnamed
// connection.
func TestServerFirstThroughSniff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "SSH-2.0-test\r\n")
		b := make([]byte, 6)
		n, _ := io.ReadFull(c, b)
		got <- string(b[:n])
	}()
	asked := make(chan string, 1)
	denied := &egress.Log{}
	n, err := New(Config{Policy: egress.New(egress.Rules{AllowHost: true}), Denied: denied, Interceptor: noIntercept{asked}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	g := newGuest(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	port := l.Addr().(*net.TCPAddr).AddrPort().Port()
	c, err := g.dial(ctx, netip.AddrPortFrom(netip.MustParseAddr(contract.NetGateway), port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	banner := make([]byte, 14)
	if _, err := io.ReadFull(c, banner); err != nil || string(banner) != "SSH-2.0-test\r\n" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	io.WriteString(c, "hello!")
	if s := <-got; s != "hello!" {
		t.Errorf("the server got %q, want hello!", s)
	}
	if name := <-asked; name != "" {
		t.Errorf("Wants asked for %q, want the unnamed connection", name)
	}
	if denied.Total() != 0 {
		t.Errorf("denials: %s", denied.Summary())
	}
}

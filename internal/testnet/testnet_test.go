package testnet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/loftd/loftd/internal/testenv"
)

// TestNet builds one test internet and checks everything a test relies on,
// from the client namespace: DNS answers, each host's HTTP and HTTPS echo on
// each of its addresses, the untrusted host's certificate, the loopback
// service, and a command run with `ip netns exec` using the test resolver.
func TestNet(t *testing.T) {
	n := New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("dns", func(t *testing.T) {
		tests := []struct {
			name  string
			qtype uint16
			want  []string // nil: NXDOMAIN
		}{
			{Allowed, dns.TypeA, []string{"11.0.1.10"}},
			{Allowed, dns.TypeAAAA, []string{"2a0b:4d07:1::10"}},
			{"ALLOWED.test", dns.TypeA, []string{"11.0.1.10"}},
			{CDNA, dns.TypeA, []string{"11.0.3.10"}},
			{CDNB, dns.TypeA, []string{"11.0.3.10"}},
			{Internal, dns.TypeA, []string{"10.20.0.10"}},
			{Internal, dns.TypeAAAA, []string{}},
			{Metadata, dns.TypeA, []string{"169.254.169.254"}},
			{"nowhere.test", dns.TypeA, nil},
		}
		for _, server := range []netip.AddrPort{n.DNS, n.OtherDNS} {
			for _, network := range []string{"udp", "tcp"} {
				for _, tt := range tests {
					got, err := n.lookup(ctx, network, server, tt.name, tt.qtype)
					if err != nil {
						t.Fatalf("lookup %s %s @%s/%s: %v", tt.name, dns.TypeToString[tt.qtype], server, network, err)
					}
					if tt.want == nil {
						if got != nil {
							t.Errorf("lookup %s @%s/%s = %v, want NXDOMAIN", tt.name, server, network, got)
						}
						continue
					}
					if !slices.Equal(got, tt.want) {
						t.Errorf("lookup %s %s @%s/%s = %v, want %v", tt.name, dns.TypeToString[tt.qtype], server, network, got, tt.want)
					}
				}
			}
		}
	})

	t.Run("echo", func(t *testing.T) {
		for _, h := range hostSpecs {
			if !h.web || h.untrusted {
				continue
			}
			for _, name := range h.names {
				for _, a := range h.addrs {
					for _, scheme := range []string{"http", "https"} {
						e, err := n.get(ctx, scheme, name, a, n.Roots)
						if err != nil {
							t.Errorf("GET %s://%s at %s: %v", scheme, name, a, err)
							continue
						}
						if e.Server != h.role || e.Host != name || e.TLS != (scheme == "https") || e.Headers.Get("X-Probe") != "probe-"+name {
							t.Errorf("GET %s://%s at %s = %+v, want server %s, host %s, X-Probe", scheme, name, a, e, h.role, name)
						}
						if scheme == "https" && e.SNI != name {
							t.Errorf("GET https://%s at %s: server saw SNI %q", name, a, e.SNI)
						}
					}
				}
			}
		}
		if got := len(n.Seen(CDNA)); got != 8 { // 2 names × 2 addresses × 2 schemes
			t.Errorf("Seen(%s) has %d requests, want 8", CDNA, got)
		}
	})

	t.Run("untrusted", func(t *testing.T) {
		_, err := n.get(ctx, "https", Untrusted, n.Addrs(Untrusted)[0], n.Roots)
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("GET https://%s with the test CA: err = %v, want an unknown authority", Untrusted, err)
		}
		if got := n.Seen(Untrusted); len(got) != 0 {
			t.Errorf("untrusted host saw %v after a failed handshake", got)
		}
	})

	t.Run("loopback", func(t *testing.T) {
		resp, err := n.HTTPClient(nil).Get("http://" + n.Loopback.String() + "/x")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e Echo
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Server != "loopback" || e.Path != "/x" {
			t.Errorf("loopback echo = %+v, %v", e, err)
		}
	})

	t.Run("command", func(t *testing.T) {
		curl := testenv.RequireCommand(t, "curl", "curl")
		out, err := n.Command(ctx, curl, "-sS", "--cacert", n.CAFile, "-H", "X-Probe: cmd", "https://"+Allowed+"/cmd").Output()
		if err != nil {
			t.Fatalf("curl in the client namespace: %v\n%s", err, out)
		}
		var e Echo
		if err := json.Unmarshal(out, &e); err != nil || e.Server != "allowed" || e.Headers.Get("X-Probe") != "cmd" {
			t.Errorf("curl https://%s = %s (%v), want the allowed echo", Allowed, out, err)
		}
		conf, err := n.Command(ctx, "cat", "/etc/resolv.conf").Output()
		if err != nil || !strings.Contains(string(conf), "nameserver "+DNSAddr.String()) {
			t.Errorf("resolv.conf in the client namespace = %q (%v), want nameserver %s", conf, err, DNSAddr)
		}
	})
}

// TestCleanup checks that a test internet leaves no namespace and no
// /etc/netns directory behind.
func TestCleanup(t *testing.T) {
	testenv.RequireRoot(t) // here too: a skip inside the subtest is no test internet
	var client string
	t.Run("build", func(t *testing.T) {
		client = New(t).Client
	})
	if client == "" {
		t.Fatal("no test internet was built")
	}
	for _, p := range []string{filepath.Join("/run/netns", client), filepath.Join("/etc/netns", client)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s after the test: %v, want it gone", p, err)
		}
	}
}

// lookup asks server for name's records of qtype from the client namespace;
// nil means NXDOMAIN.
func (n *Net) lookup(ctx context.Context, network string, server netip.AddrPort, name string, qtype uint16) ([]string, error) {
	c, err := n.Dial(ctx, network, server.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	cl := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := cl.ExchangeWithConnContext(ctx, m, &dns.Conn{Conn: c})
	if err != nil {
		return nil, err
	}
	if r.Rcode == dns.RcodeNameError {
		return nil, nil
	}
	got := []string{}
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			got = append(got, rr.A.String())
		case *dns.AAAA:
			got = append(got, rr.AAAA.String())
		}
	}
	return got, nil
}

// get fetches scheme://name/probe from address a, from the client namespace.
func (n *Net) get(ctx context.Context, scheme, name string, a netip.Addr, roots *x509.CertPool) (Echo, error) {
	port := "80"
	if scheme == "https" {
		port = "443"
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return n.Dial(ctx, "tcp", net.JoinHostPort(a.String(), port))
		},
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "GET", scheme+"://"+name+"/probe", nil)
	if err != nil {
		return Echo{}, err
	}
	req.Header.Set("X-Probe", "probe-"+name)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return Echo{}, err
	}
	defer resp.Body.Close()
	var e Echo
	err = json.NewDecoder(resp.Body).Decode(&e)
	return e, err
}

package dns

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/loftd/loftd/egress"
	mdns "github.com/miekg/dns"
)

// upstream serves test names on a real UDP socket on the loopback.
func upstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	zone := map[string][]string{
		"allowed.test.": {"allowed.test. 300 IN A 203.0.113.7", "allowed.test. 300 IN AAAA 2001:db8::7"},
		"a.cdn.test.":   {"a.cdn.test. 60 IN CNAME edge.cdn.test.", "edge.cdn.test. 60 IN A 203.0.113.9"},
		"denied.test.":  {"denied.test. 300 IN A 203.0.113.66"},
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, q *mdns.Msg) {
		m := new(mdns.Msg).SetReply(q)
		for _, s := range zone[strings.ToLower(q.Question[0].Name)] {
			rr, err := mdns.NewRR(s)
			if err != nil {
				t.Error(err)
			}
			if rr.Header().Rrtype == q.Question[0].Qtype || rr.Header().Rrtype == mdns.TypeCNAME {
				m.Answer = append(m.Answer, rr)
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestAnswer(t *testing.T) {
	var rules egress.Rules
	for _, a := range []string{"allowed.test", "*.cdn.test"} {
		if err := rules.Add(a); err != nil {
			t.Fatal(err)
		}
	}
	p := egress.New(rules)
	var denied egress.Log
	r := &Resolver{Policy: p, Denied: &denied, Upstream: upstream(t), Log: slog.New(slog.DiscardHandler)}
	for _, c := range []struct {
		name  string
		qtype uint16
		rcode int
		n     int
	}{
		{"allowed.test.", mdns.TypeA, mdns.RcodeSuccess, 1},
		{"ALLOWED.test.", mdns.TypeAAAA, mdns.RcodeSuccess, 1},
		{"a.cdn.test.", mdns.TypeA, mdns.RcodeSuccess, 2},
		{"denied.test.", mdns.TypeA, mdns.RcodeNameError, 0},
		{"cdn.test.", mdns.TypeA, mdns.RcodeNameError, 0},
	} {
		q := new(mdns.Msg).SetQuestion(c.name, c.qtype)
		got := r.Answer(context.Background(), q)
		if got.Rcode != c.rcode || len(got.Answer) != c.n || got.Id != q.Id {
			t.Errorf("Answer(%s %s) = rcode %s, %d answers, id %d; want %s, %d, id %d", c.name, mdns.TypeToString[c.qtype],
				mdns.RcodeToString[got.Rcode], len(got.Answer), got.Id, mdns.RcodeToString[c.rcode], c.n, q.Id)
		}
	}
	for _, c := range []struct {
		addr string
		want egress.Reason
	}{
		{"203.0.113.7", egress.Allowed},
		{"2001:db8::7", egress.Allowed},
		{"203.0.113.9", egress.Allowed}, // learned for a.cdn.test through the CNAME
		{"203.0.113.66", egress.NotLearned},
	} {
		if got := p.Connect(netip.MustParseAddr(c.addr)).Reason; got != c.want {
			t.Errorf("after the answers, Connect(%s) = %q, want %q", c.addr, got, c.want)
		}
	}
	if got := p.Connect(netip.MustParseAddr("203.0.113.9")).Names; len(got) != 1 || got[0] != "a.cdn.test" {
		t.Errorf("203.0.113.9 learned for %v, want [a.cdn.test]", got)
	}
	if s := denied.Summary(); denied.Total() != 2 || !strings.Contains(s, "denied.test/dns") {
		t.Errorf("denials: %d, %s; want denied.test and cdn.test", denied.Total(), s)
	}
}

func TestUpstream(t *testing.T) {
	for in, want := range map[string]string{
		"# x\nsearch lan\nnameserver 10.1.1.1\nnameserver 8.8.8.8\n": "10.1.1.1:53",
		"nameserver fe80::1%eth0\n":                                  "[fe80::1%eth0]:53",
		"nameserver bogus\n":                                         "",
		"":                                                           "",
	} {
		if got := Upstream(strings.NewReader(in)); got != want {
			t.Errorf("Upstream(%q) = %q, want %q", in, got, want)
		}
	}
}

// Without an upstream (the host names no nameserver) allowed names fail
// with SERVFAIL; refused ones are still NXDOMAIN.
func TestAnswerNoUpstream(t *testing.T) {
	var rules egress.Rules
	if err := rules.Add("allowed.test"); err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Policy: egress.New(rules), Denied: &egress.Log{}, Log: slog.New(slog.DiscardHandler)}
	for name, want := range map[string]int{"allowed.test.": mdns.RcodeServerFailure, "denied.test.": mdns.RcodeNameError} {
		if got := r.Answer(context.Background(), new(mdns.Msg).SetQuestion(name, mdns.TypeA)); got.Rcode != want {
			t.Errorf("Answer(%s) = %s, want %s", name, mdns.RcodeToString[got.Rcode], mdns.RcodeToString[want])
		}
	}
}

package egress

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func rules(t *testing.T, allow ...string) Rules {
	t.Helper()
	var r Rules
	for _, a := range allow {
		if err := r.Add(a); err != nil {
			t.Fatalf("Add(%q): %v", a, err)
		}
	}
	return r
}

func TestAddRefuses(t *testing.T) {
	for _, s := range []string{"", "   ", "10.0.0.0/33", "a/b", "exa mple.com", "foo.*.com", "**.x", "a..b", "x:y"} {
		var r Rules
		if err := r.Add(s); err == nil {
			t.Errorf("Add(%q) = nil, want an error", s)
		}
	}
}

func TestNameAllowed(t *testing.T) {
	r := rules(t, "Allowed.Test.", "*.cdn.test")
	for _, c := range []struct {
		name string
		want bool
	}{
		{"allowed.test", true},
		{"ALLOWED.test.", true},
		{"sub.allowed.test", false},
		{"a.cdn.test", true},
		{"a.b.cdn.test", true},
		{"cdn.test", false},
		{"evilcdn.test", false},
		{"denied.test", false},
		{"", false},
	} {
		if got := r.NameAllowed(c.name); got != c.want {
			t.Errorf("NameAllowed(%q) = %v, want %v", c.name, got, c.want)
		}
	}
	if !(Rules{}).NameAllowed("anything.example") {
		t.Errorf("without name rules every name is answered")
	}
}

func TestConnect(t *testing.T) {
	addr := netip.MustParseAddr
	def := New(rules(t))
	cidr := New(rules(t, "169.254.10.0/24", "10.9.0.0/16", "fd00::1"))
	list := New(rules(t, "allowed.test", "192.0.2.0/28"))
	list.Learn("allowed.test", addr("203.0.113.7"), 0)
	list.Learn("internal.allowed.test", addr("10.1.2.3"), time.Minute) // not allowed by name, but learned: the resolver decides
	list.Learn("allowed.test", addr("10.1.2.3"), time.Minute)
	list.Learn("allowed.test", addr("169.254.1.1"), time.Minute)
	for _, c := range []struct {
		name string
		p    *Policy
		addr string
		want Reason
	}{
		{"public", def, "203.0.113.7", Allowed},
		{"public v6", def, "2001:db8::1", Allowed},
		{"rfc1918", def, "10.1.2.3", PrivateRange},
		{"rfc1918 172", def, "172.16.0.1", PrivateRange},
		{"cgnat", def, "100.64.0.1", PrivateRange},
		{"ula", def, "fd12::1", PrivateRange},
		{"metadata", def, "169.254.169.254", LinkLocal},
		{"v6 link-local", def, "fe80::1", LinkLocal},
		{"loopback", def, "127.0.0.1", Reserved},
		{"v4-mapped loopback", def, "::ffff:127.0.0.1", Reserved},
		{"nat64 of private", def, "64:ff9b::a01:203", PrivateRange},
		{"broadcast", def, "255.255.255.255", Reserved},
		{"multicast", def, "224.0.0.1", Reserved},
		{"cidr link-local", cidr, "169.254.10.5", Allowed},
		{"cidr private", cidr, "10.9.8.7", Allowed},
		{"cidr single v6", cidr, "fd00::1", Allowed},
		{"cidr other link-local", cidr, "169.254.169.254", LinkLocal},
		{"learned", list, "203.0.113.7", Allowed},
		{"learned private", list, "10.1.2.3", Allowed},
		{"learned link-local", list, "169.254.1.1", LinkLocal},
		{"never learned", list, "198.51.100.1", NotLearned},
		{"allow-list cidr", list, "192.0.2.5", Allowed},
	} {
		if got := c.p.Connect(addr(c.addr)).Reason; got != c.want {
			t.Errorf("%s: Connect(%s) = %q, want %q", c.name, c.addr, got, c.want)
		}
	}
	if got := list.Connect(addr("10.1.2.3")).Names; strings.Join(got, ",") != "allowed.test,internal.allowed.test" {
		t.Errorf("Connect(10.1.2.3).Names = %v, want both names", got)
	}
	if got := list.Connect(addr("192.0.2.5")).Names; got != nil {
		t.Errorf("a CIDR rule binds no name, got %v", got)
	}
}

func TestLearnedExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	p := New(rules(t, "allowed.test"))
	p.now = func() time.Time { return now }
	a := netip.MustParseAddr("203.0.113.7")
	p.Learn("allowed.test", a, 24*time.Hour)
	now = now.Add(MaxTTL - time.Second)
	if d := p.Connect(a); !d.Allow() {
		t.Fatalf("before MaxTTL: %q", d.Reason)
	}
	now = now.Add(2 * time.Second)
	if d := p.Connect(a); d.Reason != NotLearned {
		t.Fatalf("after MaxTTL: %q, want %q (a TTL is clamped)", d.Reason, NotLearned)
	}
	p.Learn("allowed.test", a, 0)
	now = now.Add(MinTTL - time.Second)
	if d := p.Connect(a); !d.Allow() {
		t.Fatalf("a zero TTL is kept for MinTTL: %q", d.Reason)
	}
}

func TestHost(t *testing.T) {
	if got := New(rules(t)).Host().Reason; got != HostLoopback {
		t.Errorf("Host() by default = %q, want %q", got, HostLoopback)
	}
	if got := New(Rules{AllowHost: true}).Host().Reason; got != Allowed {
		t.Errorf("Host() with --allow-host = %q, want allowed", got)
	}
}

func TestMatchName(t *testing.T) {
	d := Decision{Names: []string{"allowed.test", "other.test"}}
	for _, c := range []struct {
		name string
		tls  bool
		want Reason
	}{
		{"allowed.test", true, Allowed},
		{"Other.Test.", false, Allowed},
		{"evil.test", true, NameMismatch},
		{"evil.test", false, NameMismatch},
		{"", true, NoName},
		{"", false, Allowed},
	} {
		if got := d.MatchName(c.name, c.tls); got != c.want {
			t.Errorf("MatchName(%q, tls=%v) = %q, want %q", c.name, c.tls, got, c.want)
		}
	}
	if got := (Decision{}).MatchName("evil.test", true); got != Allowed {
		t.Errorf("no bound names: MatchName = %q, want allowed", got)
	}
}

func TestLogSummary(t *testing.T) {
	var l Log
	if s := l.Summary(); s != "" {
		t.Fatalf("empty log: Summary() = %q, want \"\"", s)
	}
	var seen int
	l.OnDenial = func(Denial) { seen++ }
	l.Add(Denial{Proto: DNS, Name: "denied.test", Reason: NameDenied})
	l.Add(Denial{Proto: TCP, Addr: "169.254.1.1", Port: 443, Reason: LinkLocal})
	l.Add(Denial{Proto: TCP, Addr: "169.254.1.1", Port: 443, Reason: LinkLocal})
	var buf strings.Builder
	for _, d := range []Denial{{Proto: UDP, Addr: "192.0.2.1", Port: 53, Reason: UDPDenied}} {
		if err := WriteJSON(&buf, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.ReadJSON(strings.NewReader(buf.String() + `{"proto":"tcp","add`)); err != nil {
		t.Fatal(err)
	}
	if l.Total() != 4 || seen != 4 {
		t.Fatalf("Total() = %d, callback saw %d, want 4", l.Total(), seen)
	}
	want := "loftd: egress policy blocked 4 connections or names: 169.254.1.1 port 443/tcp: " + string(LinkLocal) + " (2×); denied.test/dns: name not allowed; 192.0.2.1 port 53/udp: " + string(UDPDenied) + " (--debug lists each)"
	if s := l.Summary(); s != want {
		t.Errorf("Summary() =\n%s\nwant\n%s", s, want)
	}
	var buf2 strings.Builder
	if err := WriteJSON(&buf2, Denial{Proto: UDP, Addr: "192.0.2.1", Port: 53, Reason: UDPDenied}); err != nil {
		t.Fatal(err)
	}
	if err := WriteTruncated(&buf2); err != nil {
		t.Fatal(err)
	}
	var capped Log
	if err := capped.ReadJSON(strings.NewReader(buf2.String())); err != nil {
		t.Fatal(err)
	}
	if s := capped.Summary(); capped.Total() != 1 || !strings.HasPrefix(s, "loftd: egress policy blocked at least 1 connection or name: ") {
		t.Errorf("a truncated file: %d denials, Summary() = %q; want 1, \"at least\"", capped.Total(), s)
	}
}

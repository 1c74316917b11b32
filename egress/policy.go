package egress

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Proto is a transport protocol.
type Proto string

// The protocols the network carries or refuses.
const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
	DNS Proto = "dns"
)

// Reason says why a connection or a name was refused (or, for Allowed,
// why it passed). The strings appear in the denial summary.
type Reason string

// The reasons.
const (
	Allowed        Reason = ""
	HostLoopback   Reason = "host loopback (allow it with --allow-host)"
	LinkLocal      Reason = "link-local address (allow it with --allow CIDR)"
	PrivateRange   Reason = "private address range (allow it with --allow CIDR or by name)"
	Reserved       Reason = "loopback, multicast or reserved address"
	NotLearned     Reason = "address not learned from an allowed name"
	NameDenied     Reason = "name not allowed"
	NameMismatch   Reason = "TLS SNI or HTTP Host does not match the name the address was learned for"
	NoName         Reason = "TLS without SNI to an address learned by name"
	UDPDenied      Reason = "UDP other than DNS to loftd's resolver"
	PlaceholderOut Reason = "secret placeholder to a host it may not go to"
)

// Decision is the verdict on one connection.
type Decision struct {
	Reason Reason
	// Names, in allow-list mode, are the names the address was learned
	// for: the TLS SNI or HTTP Host must be one of them. Empty: no
	// name check (a CIDR rule, or outside allow-list mode).
	Names []string
}

// Allow reports whether the connection may go on.
func (d Decision) Allow() bool { return d.Reason == Allowed }

// MatchName checks the name a connection announced (TLS SNI or HTTP
// Host, "" when it announced none) against the names its address was
// learned for.
func (d Decision) MatchName(name string, tls bool) Reason {
	if len(d.Names) == 0 {
		return Allowed
	}
	if name == "" {
		if tls {
			return NoName
		}
		return Allowed // neither TLS nor HTTP: nothing to match
	}
	n, ok := CanonicalName(name)
	if ok && slices.Contains(d.Names, n) {
		return Allowed
	}
	return NameMismatch
}

// TTL bounds of a learned address: a zero TTL still lets the client
// connect, and a week-long TTL does not keep an address forever.
const (
	MinTTL = 30 * time.Second
	MaxTTL = time.Hour
	// maxLearned bounds the table: a guest asking for many names below
	// an allowed suffix does not grow the host's memory without end.
	maxLearned = 1 << 16
)

// Policy decides on the guest's connections. Safe for concurrent use.
type Policy struct {
	rules Rules
	now   func() time.Time

	mu      sync.Mutex
	learned map[netip.Addr]map[string]time.Time // address → name → expiry
	count   int
}

// New is the policy for rules.
func New(rules Rules) *Policy {
	return &Policy{rules: rules, now: time.Now, learned: map[netip.Addr]map[string]time.Time{}}
}

// Rules are the policy's rules.
func (p *Policy) Rules() Rules { return p.rules }

// NameAllowed: may the resolver answer name.
func (p *Policy) NameAllowed(name string) bool { return p.rules.NameAllowed(name) }

// Learn records that the resolver answered name with addr, valid for ttl
// (clamped to [MinTTL, MaxTTL]).
func (p *Policy) Learn(name string, addr netip.Addr, ttl time.Duration) {
	n, ok := CanonicalName(name)
	if !ok {
		return
	}
	ttl = min(max(ttl, MinTTL), MaxTTL)
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count >= maxLearned {
		p.pruneLocked(now)
		if p.count >= maxLearned {
			return
		}
	}
	addr = addr.Unmap()
	names := p.learned[addr]
	if names == nil {
		names = map[string]time.Time{}
		p.learned[addr] = names
	}
	if _, had := names[n]; !had {
		p.count++
	}
	if exp := now.Add(ttl); exp.After(names[n]) {
		names[n] = exp
	}
}

func (p *Policy) pruneLocked(now time.Time) {
	for a, names := range p.learned {
		for n, exp := range names {
			if !now.Before(exp) {
				delete(names, n)
				p.count--
			}
		}
		if len(names) == 0 {
			delete(p.learned, a)
		}
	}
}

// learnedNames are the unexpired names addr was learned for, sorted.
func (p *Policy) learnedNames(addr netip.Addr) []string {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for n, exp := range p.learned[addr] {
		if now.Before(exp) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Host decides on a connection to the host's loopback (the guest's
// gateway address).
func (p *Policy) Host() Decision {
	if p.rules.AllowHost {
		return Decision{}
	}
	return Decision{Reason: HostLoopback}
}

// Connect decides on a TCP connection to addr (UDP goes only to the
// resolver, which the network answers itself). In order: an allowed CIDR
// passes; loopback, link-local, multicast and reserved addresses never do;
// in allow-list mode only learned addresses pass, private ones included
// (a name the user allowed may live in a private range); else every
// public address passes.
func (p *Policy) Connect(addr netip.Addr) Decision {
	addr = addr.Unmap()
	for _, c := range p.rules.CIDRs {
		if c.Contains(addr) {
			return Decision{}
		}
	}
	switch class(addr) {
	case classLinkLocal:
		return Decision{Reason: LinkLocal}
	case classReserved:
		return Decision{Reason: Reserved}
	}
	if p.rules.AllowList() {
		names := p.learnedNames(addr)
		if len(names) == 0 {
			return Decision{Reason: NotLearned}
		}
		return Decision{Names: names}
	}
	if class(addr) == classPrivate {
		return Decision{Reason: PrivateRange}
	}
	return Decision{}
}

type addrClass int

const (
	classPublic addrClass = iota
	classPrivate
	classLinkLocal
	classReserved
)

var (
	cgnat     = netip.MustParsePrefix("100.64.0.0/10")
	thisNet   = netip.MustParsePrefix("0.0.0.0/8")
	classE    = netip.MustParsePrefix("240.0.0.0/4")
	nat64Base = netip.MustParsePrefix("64:ff9b::/96")
)

// class sorts an address for the defaults: RFC 1918, CGNAT and ULA are
// private; 169.254/16 and fe80::/10 link-local; loopback, multicast,
// unspecified, 0/8, 240/4 (broadcast included) reserved. A NAT64 address
// is its embedded IPv4 address's class.
func class(a netip.Addr) addrClass {
	if a.Is6() && nat64Base.Contains(a) {
		b := a.As16()
		return class(netip.AddrFrom4([4]byte(b[12:])))
	}
	switch {
	case a.IsLoopback(), a.IsMulticast(), a.IsUnspecified(), a.IsInterfaceLocalMulticast(),
		thisNet.Contains(a), classE.Contains(a), !a.IsValid():
		return classReserved
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return classLinkLocal
	case a.IsPrivate(), cgnat.Contains(a):
		return classPrivate
	}
	return classPublic
}

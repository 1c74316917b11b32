// Package dns is loftd's resolver for the guest (github.com/miekg/dns):
// it answers the names the egress policy allows by asking the host's
// upstream resolver, records the A and AAAA addresses of each answer in
// the policy (the only addresses allow-list mode connects to), and
// answers NXDOMAIN for every other name, logging the denial. It serves
// whatever transport it is given (the netstack's UDP and TCP on the
// guest's DNS address); it must not import the network stack.
package dns

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/loftd/loftd/egress"
	mdns "github.com/miekg/dns"
)

// Resolver answers the guest's queries.
type Resolver struct {
	Policy *egress.Policy
	Denied *egress.Log
	// Upstream is the resolver asked for allowed names (host:port); ""
	// answers them SERVFAIL (the host has none).
	Upstream string
	Log      *slog.Logger
	// Timeout bounds one upstream exchange (2 s when zero).
	Timeout time.Duration
}

// ServeDNS answers one query (miekg/dns's Handler, for TCP): NXDOMAIN for a name the policy refuses,
// else upstream's answer, its addresses learned.
func (r *Resolver) ServeDNS(w mdns.ResponseWriter, q *mdns.Msg) {
	reply := r.Answer(context.Background(), q)
	if err := w.WriteMsg(reply); err != nil {
		r.Log.Debug("dns reply", "err", err)
	}
	r.logQuery(w.RemoteAddr(), q, reply)
}

// Answer is the reply to q.
func (r *Resolver) Answer(ctx context.Context, q *mdns.Msg) *mdns.Msg {
	if len(q.Question) != 1 || q.Opcode != mdns.OpcodeQuery {
		return new(mdns.Msg).SetRcode(q, mdns.RcodeRefused)
	}
	question := q.Question[0]
	if !r.Policy.NameAllowed(question.Name) {
		name, _ := egress.CanonicalName(question.Name)
		if name == "" {
			name = fmt.Sprintf("%q", question.Name)
		}
		r.Denied.Add(egress.Denial{Proto: egress.DNS, Name: name, Reason: egress.NameDenied})
		m := new(mdns.Msg).SetRcode(q, mdns.RcodeNameError)
		m.RecursionAvailable = true
		return m
	}
	if r.Upstream == "" {
		return new(mdns.Msg).SetRcode(q, mdns.RcodeServerFailure)
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	up := q.Copy()
	c := &mdns.Client{Net: "udp", UDPSize: 4096}
	resp, _, err := c.ExchangeContext(ctx, up, r.Upstream)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, up, r.Upstream)
	}
	if err != nil {
		r.Log.Debug("dns upstream", "name", question.Name, "upstream", r.Upstream, "err", err)
		return new(mdns.Msg).SetRcode(q, mdns.RcodeServerFailure)
	}
	r.learn(question.Name, resp)
	resp.Id = q.Id
	return resp
}

// learn records every A and AAAA of resp under the name the guest asked
// for (a CNAME chain's addresses belong to that name: it is the one the
// guest's TLS SNI will carry).
func (r *Resolver) learn(name string, resp *mdns.Msg) {
	for _, rr := range resp.Answer {
		var ip net.IP
		switch a := rr.(type) {
		case *mdns.A:
			ip = a.A
		case *mdns.AAAA:
			ip = a.AAAA
		default:
			continue
		}
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		r.Policy.Learn(name, addr.Unmap(), time.Duration(rr.Header().Ttl)*time.Second)
	}
}

// Upstream is the first nameserver of resolv.conf (r), as host:53; ""
// when there is none.
func Upstream(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "nameserver" {
			// A link-local IPv6 server carries its zone (fe80::1%eth0).
			if a, err := netip.ParseAddr(f[1]); err == nil {
				return net.JoinHostPort(a.String(), "53")
			}
		}
	}
	return ""
}

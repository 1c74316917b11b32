// Package egress is the guest's egress policy, enforced on the host: the
// typed rules (--allow CIDR|NAME|*.NAME, --allow-host), the decision for a
// connection with its reason, the table of addresses learned from the
// resolver's answers (kept for their TTL within bounds), and the log of
// denials with counts. It is pure: no network stack, no DNS library, so
// both the user-mode network (egress/netstack) and the TLS interceptor
// (egress/mitm) import it. It must not import host, helper or launch.
package egress

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Rules are what the user allowed beyond the defaults. With no name rule
// the guest reaches every public address; with one, it reaches only the
// addresses the resolver learned for allowed names (allow-list mode).
type Rules struct {
	// CIDRs are reachable whatever their range (link-local included):
	// an explicit CIDR is the one way to a link-local server.
	CIDRs []netip.Prefix `json:"cidrs,omitempty"`
	// Names are allowed exactly (lower case, no trailing dot).
	Names []string `json:"names,omitempty"`
	// Suffixes come from *.NAME: they allow every name below NAME, not
	// NAME itself (as a TLS wildcard certificate does).
	Suffixes []string `json:"suffixes,omitempty"`
	// AllowHost lets the guest reach the host's loopback through the
	// gateway address (host.containers.internal).
	AllowHost bool `json:"allow_host,omitempty"`
}

// AllowList reports whether a name rule puts the policy in allow-list
// mode.
func (r Rules) AllowList() bool { return len(r.Names) > 0 || len(r.Suffixes) > 0 }

// Add parses one --allow value (or an [network] allow entry) into r: a
// CIDR or a bare address, a name, or *.NAME.
func (r *Rules) Add(s string) error {
	v := strings.TrimSpace(s)
	if v == "" {
		return fmt.Errorf("%q: empty; want a CIDR (10.1.0.0/16), a name (example.com) or *.example.com", s)
	}
	if p, err := netip.ParsePrefix(v); err == nil {
		r.CIDRs = append(r.CIDRs, p.Masked())
		return nil
	}
	if a, err := netip.ParseAddr(v); err == nil {
		a = a.Unmap()
		r.CIDRs = append(r.CIDRs, netip.PrefixFrom(a, a.BitLen()))
		return nil
	}
	if strings.ContainsAny(v, "/:") {
		return fmt.Errorf("%q: not a CIDR (want 10.1.0.0/16 or fd00::/8)", s)
	}
	wild := strings.HasPrefix(v, "*.")
	name, ok := CanonicalName(strings.TrimPrefix(v, "*."))
	if !ok || strings.Contains(name, "*") {
		return fmt.Errorf("%q: not a host name; want example.com or *.example.com (a * only as the first label)", s)
	}
	if wild {
		r.Suffixes = appendNew(r.Suffixes, name)
	} else {
		r.Names = appendNew(r.Names, name)
	}
	return nil
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// CanonicalName is name in lower case without its trailing dot, and
// whether it is a plausible DNS name (labels of 1-63 letters, digits, -
// and _, 253 bytes in all). Names come from the guest: nothing else is
// compared.
func CanonicalName(name string) (string, bool) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	if n == "" || len(n) > 253 {
		return "", false
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '*') {
				return "", false
			}
		}
	}
	return n, true
}

// NameAllowed reports whether the resolver may answer name: every name
// outside allow-list mode, else the allowed names and the names below an
// allowed suffix.
func (r Rules) NameAllowed(name string) bool {
	if !r.AllowList() {
		return true
	}
	n, ok := CanonicalName(name)
	if !ok {
		return false
	}
	if slices.Contains(r.Names, n) {
		return true
	}
	for _, s := range r.Suffixes {
		if strings.HasSuffix(n, "."+s) {
			return true
		}
	}
	return false
}

// String lists the rules as --allow flags, for logs.
func (r Rules) String() string {
	var a []string
	for _, p := range r.CIDRs {
		a = append(a, "--allow "+p.String())
	}
	for _, n := range r.Names {
		a = append(a, "--allow "+n)
	}
	for _, s := range r.Suffixes {
		a = append(a, "--allow *."+s)
	}
	if r.AllowHost {
		a = append(a, "--allow-host")
	}
	if len(a) == 0 {
		return "defaults (public addresses only)"
	}
	return strings.Join(a, " ")
}

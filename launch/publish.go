package launch

import (
	"fmt"
	"strconv"
	"strings"
)

// Protocol is a published port's transport.
type Protocol string

// The protocols a publish carries.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// Publish is one published guest port range: host ports HostFirst to
// HostLast on HostIP ("" = every address) go to guest ports GuestFirst
// on. The ranges are equally long (the parser's rule). Each backend renders
// it in its own syntax (helper/passt, helper/krun); the plan holds none.
type Publish struct {
	HostIP     string   `json:"host_ip,omitempty"`
	HostFirst  int      `json:"host_first"`
	HostLast   int      `json:"host_last"`
	GuestFirst int      `json:"guest_first"`
	GuestLast  int      `json:"guest_last"`
	Proto      Protocol `json:"proto"`
}

// String is the publish as the user writes it (normalized):
// [IP:]HOST[-LAST]:GUEST[-LAST]/PROTO.
func (p Publish) String() string {
	var b strings.Builder
	if p.HostIP != "" {
		if strings.Contains(p.HostIP, ":") {
			b.WriteString("[" + p.HostIP + "]:")
		} else {
			b.WriteString(p.HostIP + ":")
		}
	}
	b.WriteString(Span(p.HostFirst, p.HostLast) + ":" + Span(p.GuestFirst, p.GuestLast) + "/" + string(p.Proto))
	return b.String()
}

// Span is a port range as FIRST-LAST, or one port.
func Span(first, last int) string {
	if first == last {
		return strconv.Itoa(first)
	}
	return fmt.Sprintf("%d-%d", first, last)
}

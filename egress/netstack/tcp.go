package netstack

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/egress"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

var (
	gatewayAddr = netip.MustParseAddr(contract.NetGateway)
	dnsAddr     = netip.MustParseAddr(contract.NetDNS)
)

const dialTimeout = 10 * time.Second

// forwardTCP decides on one guest connection (its SYN): refused with a
// reset when the address is, else accepted and, when the address is bound
// to names or an interceptor may want it, its first bytes checked before
// the real server is dialed.
func (n *Net) forwardTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	dst := netipAddr(id.LocalAddress)
	port := id.LocalPort
	upstream := dst
	var d egress.Decision
	switch dst {
	case gatewayAddr:
		d, upstream = n.cfg.Policy.Host(), n.cfg.HostLoopback
	case dnsAddr:
		d = egress.Decision{Reason: egress.Reserved} // only port 53, which its listener takes
	default:
		d = n.cfg.Policy.Connect(dst)
	}
	if !d.Allow() {
		n.deny(egress.Denial{Proto: egress.TCP, Addr: dst.String(), Port: port, Reason: d.Reason})
		r.Complete(true)
		return
	}
	target := net.JoinHostPort(upstream.String(), strconv.Itoa(int(port)))
	dial := func(ctx context.Context) (net.Conn, error) {
		dl := net.Dialer{Timeout: dialTimeout}
		return dl.DialContext(ctx, "tcp", target)
	}
	if len(d.Names) == 0 && n.cfg.Interceptor == nil {
		// Nothing to read first: dial now, so a refused server is a
		// refused connection for the guest too.
		out, err := dial(context.Background())
		if err != nil {
			n.cfg.Log.Debug("tcp dial", "target", target, "err", err)
			r.Complete(true)
			return
		}
		guest := n.accept(r)
		if guest == nil {
			out.Close()
			return
		}
		go splice(guest, out)
		return
	}
	guest := n.accept(r)
	if guest == nil {
		return
	}
	go n.checked(guest, d, dst, port, dial)
}

// accept completes the guest's handshake.
func (n *Net) accept(r *tcp.ForwarderRequest) net.Conn {
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq)
	r.Complete(false)
	if err != nil {
		n.cfg.Log.Debug("tcp endpoint", "err", err.String())
		return nil
	}
	return gonet.NewTCPConn(&wq, ep)
}

// checked reads what the guest announced, matches it to the names the
// address was learned for, hands the connection to the interceptor when it
// wants it, or dials and splices.
func (n *Net) checked(guest net.Conn, d egress.Decision, dst netip.Addr, port uint16, dial func(context.Context) (net.Conn, error)) {
	_ = guest.SetReadDeadline(time.Now().Add(peekWait))
	early := startDial(guest, dial)
	defer early.close()
	a, conn := sniff(guest)
	early.sniffed()
	reason := d.MatchName(a.name, a.tls)
	if a.badHTTP && len(d.Names) > 0 {
		reason = egress.NameMismatch
	}
	if reason != egress.Allowed {
		n.deny(egress.Denial{Proto: egress.TCP, Name: a.name, Addr: dst.String(), Port: port, Reason: reason})
		conn.Close()
		return
	}
	name := a.name
	if name == "" && len(d.Names) > 0 {
		name = d.Names[0]
	}
	// The interceptor sees unnamed connections too: it scans clear text
	// for placeholders, and reads a TLS name from the handshake itself.
	if n.cfg.Interceptor != nil && n.cfg.Interceptor.Wants(name, port) {
		ctx := context.Background()
		if err := n.cfg.Interceptor.Serve(ctx, conn, name, early.dial); err != nil {
			if den, ok := err.(*egress.Denial); ok {
				n.deny(*den)
			} else {
				n.cfg.Log.Debug("intercept", "name", name, "err", err)
			}
		}
		conn.Close()
		return
	}
	out, err := early.dial(context.Background())
	if err != nil {
		n.cfg.Log.Debug("tcp dial", "addr", dst, "port", port, "err", err)
		conn.Close()
		return
	}
	splice(conn, out)
}

func (n *Net) deny(d egress.Denial) { n.cfg.Denied.Add(d) }

// splice copies both ways, half-closing each side as its peer finishes,
// and closes both when both directions are done.
func splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}

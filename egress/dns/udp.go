package dns

import (
	"context"
	"errors"
	"net"
	"sync"

	mdns "github.com/miekg/dns"
)

// ServeUDP answers the queries arriving on pc until it closes. Queries
// are answered concurrently, but the replies to one client go out in the
// order its queries came: busybox's nslookup sends its A and AAAA queries
// with one id and takes the first reply with that id as the A answer, so
// an AAAA reply that overtook the A one lost the address (seen under
// miekg/dns's Server, which replies as each handler finishes).
func (r *Resolver) ServeUDP(pc net.PacketConn) error {
	var mu sync.Mutex
	last := map[string]chan struct{}{} // client → its latest reply's "written"
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		q := new(mdns.Msg)
		if q.Unpack(buf[:n]) != nil || q.Response {
			continue
		}
		key := from.String()
		done := make(chan struct{})
		mu.Lock()
		prev := last[key]
		last[key] = done
		mu.Unlock()
		go func() {
			defer close(done)
			reply := r.Answer(context.Background(), q)
			r.logQuery(from, q, reply)
			out, err := truncated(reply, q)
			if prev != nil {
				<-prev
			}
			mu.Lock()
			if last[key] == done {
				delete(last, key)
			}
			mu.Unlock()
			if err == nil {
				_, err = pc.WriteTo(out, from)
			}
			if err != nil {
				r.Log.Debug("dns reply", "client", from, "err", err)
			}
		}()
	}
}

// truncated packs reply to fit the client's UDP size (512 bytes, or its
// EDNS0 size), setting TC when it had to drop records.
func truncated(reply, q *mdns.Msg) ([]byte, error) {
	size := mdns.MinMsgSize
	if opt := q.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
		size = int(opt.UDPSize())
	}
	reply.Truncate(size)
	return reply.Pack()
}

func (r *Resolver) logQuery(from net.Addr, q, reply *mdns.Msg) {
	if len(q.Question) == 1 {
		r.Log.Debug("dns", "client", from, "id", q.Id, "name", q.Question[0].Name, "type", mdns.TypeToString[q.Question[0].Qtype],
			"rcode", mdns.RcodeToString[reply.Rcode], "answers", len(reply.Answer))
	}
}

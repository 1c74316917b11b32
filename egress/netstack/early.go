package netstack

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// earlyDial dials the server while the guest's first bytes are awaited,
// and ends that wait when the server speaks first (SSH's banner): a
// protocol whose client stays silent goes on at once instead of after
// peekWait. The connection goes to whoever dials (the splice, or the
// interceptor's dial), once.
type earlyDial struct {
	done  chan struct{} // closed once the dial returned
	conn  net.Conn
	err   error
	guest net.Conn

	mu       sync.Mutex
	sniffing bool // the guest's read deadline is the sniffer's
	used     bool
}

func startDial(guest net.Conn, dial func(context.Context) (net.Conn, error)) *earlyDial {
	e := &earlyDial{done: make(chan struct{}), guest: guest, sniffing: true}
	go func() {
		defer close(e.done)
		c, err := dial(context.Background())
		if err != nil {
			e.err = err
			return
		}
		fc := &firstConn{Conn: c, first: make(chan []byte, 1)}
		e.conn = fc
		go func() {
			b := make([]byte, 4096)
			k, _ := c.Read(b) // the connection's first read: its error comes again on the next
			fc.first <- b[:k]
			if k > 0 {
				e.stopWait()
			}
		}()
	}()
	return e
}

// stopWait ends the sniffer's wait for the guest's first bytes.
func (e *earlyDial) stopWait() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sniffing {
		_ = e.guest.SetReadDeadline(time.Now())
	}
}

// sniffed: the sniffer is done; the guest's reads have no deadline again.
func (e *earlyDial) sniffed() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sniffing = false
	_ = e.guest.SetReadDeadline(time.Time{})
}

var errDialedTwice = errors.New("netstack: the server connection was already taken")

// dial hands the early connection over, once.
func (e *earlyDial) dial(ctx context.Context) (net.Conn, error) {
	select {
	case <-e.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.used {
		return nil, errDialedTwice
	}
	e.used = true
	return e.conn, e.err
}

// close closes the connection if nobody took it (a refused name, an
// interceptor that gave up before dialing).
func (e *earlyDial) close() {
	go func() {
		<-e.done
		e.mu.Lock()
		defer e.mu.Unlock()
		if !e.used && e.conn != nil {
			e.used = true
			e.conn.Close()
		}
	}()
}

// firstConn reads the bytes of the dial's first read before the rest.
type firstConn struct {
	net.Conn
	first   chan []byte
	pending []byte
	got     bool
}

func (f *firstConn) Read(p []byte) (int, error) {
	if !f.got {
		f.pending, f.got = <-f.first, true
	}
	if len(f.pending) > 0 {
		n := copy(p, f.pending)
		f.pending = f.pending[n:]
		return n, nil
	}
	return f.Conn.Read(p)
}

// CloseWrite half-closes the server side when it can.
func (f *firstConn) CloseWrite() error {
	if cw, ok := f.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

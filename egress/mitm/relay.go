package mitm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sync/atomic"

	"github.com/loftd/loftd/egress"
)

// downstream copies the server's bytes to the guest from the start (a
// server may speak first: SMTP, IMAP), counting them, and half-closes the
// guest's side at the server's end.
type downstream struct {
	up     net.Conn
	done   chan struct{}
	copied atomic.Int64
	cut    atomic.Bool
}

func startDownstream(guest, up net.Conn) *downstream {
	d := &downstream{up: up, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		_, _ = io.Copy(countingWriter{guest, &d.copied}, up)
		if !d.cut.Load() {
			closeWrite(guest)
		}
	}()
	return d
}

// stop cuts the server off and waits for the copy to end, leaving the
// guest's side open for a refusal.
func (d *downstream) stop() {
	d.cut.Store(true)
	d.up.Close()
	<-d.done
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// relay carries a connection that is not HTTP/1.1 (or plain text) both ways,
// reading the guest's bytes for placeholders. allowed names the secrets
// that may go to name; nil (clear text) allows none: a placeholder is
// replaced only inside TLS, so one in clear text never leaves.
func (p *Proxy) relay(guest net.Conn, src io.Reader, up net.Conn, name string, allowed map[string]bool) error {
	return p.relayRest(guest, src, up, startDownstream(guest, up), name, allowed)
}

// scanCopy copies src to dst until EOF and stops, before writing, at the
// first chunk that completes the placeholder of one of watch. It does not
// hold bytes back waiting for more (an interactive protocol would stall),
// so the first bytes of a placeholder split across reads may pass: they are
// random and worth nothing without the rest.
func scanCopy(dst io.Writer, src io.Reader, watch []Secret) (*Secret, error) {
	longest := 0
	for _, s := range watch {
		longest = max(longest, len(s.Placeholder))
	}
	buf := make([]byte, 32<<10)
	var tail []byte
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if len(watch) > 0 {
				window := append(tail, buf[:n]...)
				for i := range watch {
					if bytes.Contains(window, []byte(watch[i].Placeholder)) {
						return &watch[i], nil
					}
				}
				tail = append(tail[:0], window[max(0, len(window)-longest+1):]...)
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return nil, err
			}
		}
		if rerr == io.EOF {
			return nil, nil
		}
		if rerr != nil {
			return nil, rerr
		}
	}
}

// relayHTTP carries HTTP/1.1 requests one by one, rewriting their headers,
// and the server's responses as they come. A request that would carry a
// placeholder where it may not go ends the connection: the guest gets a 403
// that names the secret when no response had started, and the run a denial.
// After an Upgrade request (WebSocket) the rest is relayed as bytes.
func (p *Proxy) relayHTTP(guest net.Conn, br *bufio.Reader, up net.Conn, name string) error {
	down := startDownstream(guest, up)
	allowed := p.allowedSecrets(name)
	for {
		if _, err := br.Peek(1); err != nil {
			closeWrite(up)
			<-down.done
			return nil // the guest is done (or gone)
		}
		if !httpRequestLine(br) {
			// Not HTTP/1.x (IMAP, SMTP over TLS without ALPN): bytes.
			return p.relayRest(guest, br, up, down, name, allowed)
		}
		if err := peekHeader(br); err != nil {
			up.Close()
			<-down.done
			return fmt.Errorf("HTTP request to %s: %w", name, err)
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			up.Close()
			<-down.done
			return fmt.Errorf("HTTP request to %s: %w", name, err)
		}
		if s := p.rewrite(req, name); s != nil {
			down.stop()
			if down.copied.Load() == 0 {
				writeRefusal(guest, s.Name, name)
			}
			p.cfg.Log.Debug("mitm refused a placeholder", "secret", s.Name, "name", name)
			return p.denial(guest, name, egress.PlaceholderOut)
		}
		if err := writeRequest(up, req); err != nil {
			up.Close()
			<-down.done
			return fmt.Errorf("HTTP request to %s: %w", name, err)
		}
		if req.Header.Get("Upgrade") != "" {
			return p.relayRest(guest, br, up, down, name, allowed)
		}
	}
}

// relayRest relays what is left of the guest's stream as bytes, scanning
// it for the placeholders that may not go to name.
func (p *Proxy) relayRest(guest net.Conn, src io.Reader, up net.Conn, down *downstream, name string, allowed map[string]bool) error {
	var watch []Secret
	for _, s := range p.cfg.Secrets {
		if !allowed[s.Name] {
			watch = append(watch, s)
		}
	}
	found, err := scanCopy(up, src, watch)
	if found != nil {
		down.stop()
		p.cfg.Log.Debug("mitm refused a placeholder", "secret", found.Name, "name", name)
		return p.denial(guest, name, egress.PlaceholderOut)
	}
	closeWrite(up)
	<-down.done
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("relay to %s: %w", name, err)
	}
	return nil
}

// httpRequestLine reports whether br starts with an HTTP/1.x request line
// ("METHOD TARGET HTTP/1.x"), waiting for the first line (within br's
// buffer). A client of another protocol that sends a line first is then
// relayed as bytes instead of waiting for a header block that never comes.
func httpRequestLine(br *bufio.Reader) bool {
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return requestLineRE.Match(bytes.TrimSuffix(b[:i], []byte("\r")))
		}
		if br.Buffered() >= br.Size() {
			return false
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return false
		}
	}
}

var requestLineRE = regexp.MustCompile(`^[!#$%&'*+.^_|~0-9A-Za-z-]+ \S+ HTTP/1\.[01]$`)

// writeRefusal answers the guest's refused request with a 403 that says
// what happened and how to allow it.
func writeRefusal(guest net.Conn, secret, name string) {
	body := fmt.Sprintf("loftd: the placeholder of secret %s may not go to %s; add the host to the secret's hosts to allow it\n", secret, name)
	fmt.Fprintf(guest, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	closeWrite(guest)
}

// maxHeader bounds a request's header block, so a guest cannot make the
// host buffer without end (Go's server allows 1 MiB, nginx 32 KiB).
const maxHeader = 128 << 10

// peekHeader waits until br holds a whole header block (up to the blank
// line), which must fit in br's buffer (maxHeader).
func peekHeader(br *bufio.Reader) error {
	for {
		b, _ := br.Peek(br.Buffered())
		if bytes.Contains(b, []byte("\r\n\r\n")) || bytes.Contains(b, []byte("\n\n")) {
			return nil
		}
		if br.Buffered() >= br.Size() {
			return fmt.Errorf("header block over %d bytes", br.Size())
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return err
		}
	}
}

package netstack

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// announced is what the first bytes of a guest connection say about its
// destination: the TLS ClientHello's SNI, or the HTTP request's Host.
type announced struct {
	name string
	tls  bool
	// http: the bytes looked like an HTTP request line; badHTTP: they
	// did, and the request did not parse (refused when a name is bound,
	// so a request the parser rejects cannot slip a Host past it).
	http, badHTTP bool
}

// peekWait is how long the first bytes may take: a protocol where the
// server speaks first (SSH, SMTP) sends nothing, and goes on unnamed.
const peekWait = 3 * time.Second

// sniff reads the start of guest's stream (a ClientHello, or an HTTP
// request's header) and returns what it announced and a conn that replays
// every byte read before the rest of the stream. The caller bounds the
// wait with guest's read deadline.
func sniff(guest net.Conn) (announced, net.Conn) {
	var seen bytes.Buffer
	tee := io.TeeReader(guest, &seen)
	replay := func() net.Conn { return &replayConn{Conn: guest, r: io.MultiReader(&seen, guest)} }
	// Servers skip empty lines before a request line (RFC 9112 2.2):
	// so does the sniffer, or "\r\nGET" would pass as another protocol.
	var first [1]byte
	for skipped := 0; ; skipped++ {
		if _, err := io.ReadFull(tee, first[:]); err != nil {
			return announced{}, replay()
		}
		if (first[0] != '\r' && first[0] != '\n') || skipped == 64 {
			break
		}
	}
	rest := io.MultiReader(bytes.NewReader(first[:]), tee)
	if first[0] == 0x16 { // TLS handshake record
		return announced{name: clientHelloSNI(rest), tls: true}, replay()
	}
	br := bufio.NewReaderSize(rest, 16<<10)
	if !looksHTTP(br) {
		return announced{}, replay()
	}
	req, err := http.ReadRequest(br)
	if err != nil || req.Host == "" {
		// h2c's "PRI * HTTP/2.0" preface carries its authority in
		// HPACK: no Host to check, so it is refused as unparsed.
		return announced{http: true, badHTTP: true}, replay()
	}
	host := req.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return announced{name: host, http: true}, replay()
}

// looksHTTP: the first line (up to 8 KiB) is "TOKEN TARGET HTTP/..." in
// any case, so a lowercase or unknown method is still checked as HTTP.
func looksHTTP(br *bufio.Reader) bool {
	for n := 16; n <= 8<<10; n *= 2 {
		b, err := br.Peek(n)
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[:i]
		} else if err == nil {
			continue
		}
		f := bytes.Fields(b)
		return len(f) == 3 && bytes.HasPrefix(bytes.ToUpper(f[2]), []byte("HTTP/"))
	}
	return false
}

var errSniffed = errors.New("client hello read")

// clientHelloSNI parses a ClientHello with crypto/tls's own parser (a
// server handshake that stops once it has the hello) and returns its SNI,
// "" when there is none or it does not parse.
func clientHelloSNI(r io.Reader) string {
	var sni string
	conn := tls.Server(readOnlyConn{r: r}, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni = h.ServerName
		return nil, errSniffed
	}})
	_ = conn.Handshake()
	return sni
}

// readOnlyConn is a net.Conn over a reader that drops writes (the sniffing
// handshake must send the guest nothing).
type readOnlyConn struct {
	net.Conn
	r io.Reader
}

func (c readOnlyConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (readOnlyConn) Write(p []byte) (int, error)        { return len(p), nil }
func (readOnlyConn) Close() error                       { return nil }
func (readOnlyConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (readOnlyConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (readOnlyConn) SetDeadline(t time.Time) error      { return nil }
func (readOnlyConn) SetReadDeadline(t time.Time) error  { return nil }
func (readOnlyConn) SetWriteDeadline(t time.Time) error { return nil }

// replayConn reads the sniffed bytes again, then the rest of the stream.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the guest side when it can.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

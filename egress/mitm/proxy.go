// Package mitm is the host's TLS interception for secrets (issue 20): a
// per-workspace CA the guest trusts, a leaf certificate minted per server
// name, TLS terminated toward the guest and opened again toward the real
// server (verified against the system's roots plus --extra-ca), and HTTP/1.1
// request headers rewritten: a secret's placeholder becomes its value on a
// TLS connection to one of the secret's hosts, and a placeholder on its way
// anywhere else is refused and reported as an *egress.Denial.
//
// It knows no network stack: the user-mode network (egress/netstack) hands
// it a guest connection the policy allowed and a dial function. It imports
// egress (the denial type) and the standard library, never host, helper or
// launch.
package mitm

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/loftd/loftd/egress"
)

// Interceptor is what the user-mode network calls for a TCP connection the
// policy allowed (egress/netstack holds the same method set).
type Interceptor interface {
	// Wants reports whether a TCP connection the policy allowed, to
	// name:port, must go through Serve.
	Wants(name string, port uint16) bool
	// Serve takes over the guest side of the connection (bytes already
	// peeked are replayed by the conn it is given) and reaches the real
	// server through dial. A denial is returned as *egress.Denial.
	Serve(ctx context.Context, guest net.Conn, name string, dial func(ctx context.Context) (net.Conn, error)) error
}

// UpstreamUntrusted is the denial reason of a server whose certificate the
// host does not trust: the guest sees only a TLS alert, so the run's denial
// summary says why.
const UpstreamUntrusted egress.Reason = "server certificate not trusted by the host (add its CA with --extra-ca FILE)"

// Config is an interceptor's setup.
type Config struct {
	CA      *CA
	Secrets []Secret
	// Roots verify the real servers: the system's roots plus the
	// --extra-ca certificates (see Roots). Nil: the system's roots.
	Roots *x509.CertPool
	Log   *slog.Logger
}

// Proxy is the Interceptor.
type Proxy struct {
	cfg Config
}

var _ Interceptor = (*Proxy)(nil)

// New checks cfg and returns its interceptor.
func New(cfg Config) (*Proxy, error) {
	if cfg.CA == nil {
		return nil, errors.New("mitm: no CA")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Roots == nil {
		roots, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("mitm: system roots: %w", err)
		}
		cfg.Roots = roots
	}
	seen := map[string]bool{}
	for _, s := range cfg.Secrets {
		if seen[s.Name] {
			return nil, fmt.Errorf("secret %s is given twice; keep one", s.Name)
		}
		seen[s.Name] = true
		if len(s.Placeholder) < 16 || len(s.Hosts) == 0 {
			return nil, fmt.Errorf("mitm: secret %s was not made by NewSecret", s.Name)
		}
	}
	return &Proxy{cfg: cfg}, nil
}

// Wants: every connection while there are secrets, whatever its port. A
// placeholder may leave through any of them; only the ones Serve reads can
// be refused.
func (p *Proxy) Wants(name string, port uint16) bool { return len(p.cfg.Secrets) > 0 }

// Serve intercepts one guest connection: TLS (a handshake record first) is
// terminated and inspected, anything else is relayed with its placeholders
// refused (a placeholder is never replaced in clear text).
func (p *Proxy) Serve(ctx context.Context, guest net.Conn, name string, dial func(ctx context.Context) (net.Conn, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	br := bufio.NewReader(guest)
	first, err := br.Peek(1)
	if err != nil {
		return nil // the guest closed without a byte: nothing to relay
	}
	g := &peekedConn{Conn: guest, r: br}
	if first[0] != recordTypeHandshake {
		up, err := dial(ctx)
		if err != nil {
			return fmt.Errorf("dial %s: %w", name, err)
		}
		defer up.Close()
		stop := context.AfterFunc(ctx, func() { guest.Close(); up.Close() })
		defer stop()
		return p.relay(g, br, up, name, nil)
	}
	return p.serveTLS(ctx, g, name, dial)
}

// handshakeTimeout bounds the real server's TCP connect and TLS handshake;
// the guest's handshake, which waits for it, gets twice as long.
const handshakeTimeout = 30 * time.Second

// recordTypeHandshake is a TLS record's first byte when it carries a
// handshake message (the ClientHello).
const recordTypeHandshake = 0x16

// serveTLS completes the handshake with the real server from inside the
// guest's (so a refused server is a refused guest handshake), then answers
// the guest with a leaf for the same name and the protocol the server chose.
func (p *Proxy) serveTLS(ctx context.Context, g net.Conn, name string, dial func(ctx context.Context) (net.Conn, error)) error {
	var (
		up     *tls.Conn
		sni    string
		denial *egress.Denial
		upErr  error
	)
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			sni = hello.ServerName
			if sni == "" {
				sni = name
			}
			canon, ok := egress.CanonicalName(sni)
			if !ok || strings.Contains(canon, "*") || name != "" && !strings.EqualFold(strings.TrimSuffix(name, "."), canon) {
				denial = p.denial(g, sni, egress.NameMismatch)
				return nil, denial
			}
			sni = canon
			// A server that takes the connection and never answers
			// must not hold it (and the guest's) forever.
			hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
			defer cancel()
			raw, err := dial(hctx)
			if err != nil {
				upErr = fmt.Errorf("dial %s: %w", sni, err)
				return nil, upErr
			}
			up = tls.Client(raw, &tls.Config{
				ServerName: sni,
				RootCAs:    p.cfg.Roots,
				MinVersion: tls.VersionTLS12,
				NextProtos: upstreamProtos(hello.SupportedProtos),
			})
			if err := up.HandshakeContext(hctx); err != nil {
				raw.Close()
				up = nil
				upErr = fmt.Errorf("TLS to %s: %w", sni, err)
				var unknown x509.UnknownAuthorityError
				var invalid x509.CertificateInvalidError
				var host x509.HostnameError
				if errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &host) {
					denial = p.denial(g, sni, UpstreamUntrusted)
				}
				return nil, upErr
			}
			leaf, err := p.cfg.CA.Leaf(sni)
			if err != nil {
				return nil, err
			}
			c := &tls.Config{Certificates: []tls.Certificate{*leaf}, MinVersion: tls.VersionTLS12}
			if np := up.ConnectionState().NegotiatedProtocol; np != "" {
				c.NextProtos = []string{np}
			}
			return c, nil
		},
	}
	gs := tls.Server(g, cfg)
	// The handshake's dial and upstream handshake watch ctx themselves;
	// closing the guest's side ends the rest.
	stopGuest := context.AfterFunc(ctx, func() { g.Close() })
	defer stopGuest()
	gctx, cancelHandshake := context.WithTimeout(ctx, 2*handshakeTimeout)
	defer cancelHandshake()
	if err := gs.HandshakeContext(gctx); err != nil {
		if up != nil {
			up.Close()
		}
		switch {
		case denial != nil:
			p.cfg.Log.Debug("mitm refused", "name", sni, "reason", denial.Reason, "err", upErr)
			return denial
		case upErr != nil:
			return upErr
		}
		return fmt.Errorf("TLS from the guest for %s: %w", sni, err)
	}
	defer up.Close()
	stopUp := context.AfterFunc(ctx, func() { up.Close() })
	defer stopUp()
	br := bufio.NewReaderSize(gs, maxHeader)
	if np := gs.ConnectionState().NegotiatedProtocol; np == "" || np == "http/1.1" {
		return p.relayHTTP(gs, br, up, sni)
	}
	return p.relay(gs, br, up, sni, p.allowedSecrets(sni))
}

// upstreamProtos is the guest's ALPN list without h2: headers are
// rewritten in HTTP/1.1 only, so the server must not choose HTTP/2.
func upstreamProtos(guest []string) []string {
	return slices.DeleteFunc(slices.Clone(guest), func(p string) bool { return p == "h2" || p == "h2c" })
}

// allowedSecrets are the secrets that may go to name.
func (p *Proxy) allowedSecrets(name string) map[string]bool {
	ok := map[string]bool{}
	for _, s := range p.cfg.Secrets {
		if s.AllowedTo(name) {
			ok[s.Name] = true
		}
	}
	return ok
}

// denial is a refusal of the guest's connection g to name.
func (p *Proxy) denial(g net.Conn, name string, reason egress.Reason) *egress.Denial {
	d := &egress.Denial{Proto: egress.TCP, Name: name, Reason: reason}
	if a, ok := g.LocalAddr().(*net.TCPAddr); ok && a != nil {
		d.Addr = a.AddrPort().Addr().Unmap().String()
		d.Port = a.AddrPort().Port()
	}
	return d
}

// peekedConn reads through the bufio.Reader that peeked at the connection.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (c *peekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

package testnet

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Echo is what an echo server answers, as JSON: who it is and the request it
// got, headers as they arrived. A test reads it to see what reached the
// server (a secret's real value, a placeholder, or nothing).
type Echo struct {
	Server  string      `json:"server"` // the host's role, e.g. "allowed"
	TLS     bool        `json:"tls"`
	SNI     string      `json:"sni,omitempty"`
	Method  string      `json:"method"`
	Host    string      `json:"host"` // the request's Host header
	Path    string      `json:"path"`
	Proto   string      `json:"proto"`
	Headers http.Header `json:"headers"`
	// BodyBytes and BodySHA256 say what body arrived (read whole).
	BodyBytes  int64  `json:"body_bytes"`
	BodySHA256 string `json:"body_sha256"`
}

// echoLog keeps every request one host's servers got, for assertions that a
// host saw nothing (a blocked connection) or saw a given header.
type echoLog struct {
	mu   sync.Mutex
	seen []Echo
}

func (l *echoLog) add(e Echo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, e)
}

func (l *echoLog) list() []Echo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Echo(nil), l.seen...)
}

func echoHandler(server string, log *echoLog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := Echo{
			Server:  server,
			TLS:     r.TLS != nil,
			Method:  r.Method,
			Host:    r.Host,
			Path:    r.URL.RequestURI(),
			Proto:   r.Proto,
			Headers: r.Header.Clone(),
		}
		if r.TLS != nil {
			e.SNI = r.TLS.ServerName
		}
		h := sha256.New()
		e.BodyBytes, _ = io.Copy(h, r.Body)
		e.BodySHA256 = hex.EncodeToString(h.Sum(nil))
		log.add(e)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Testnet-Server", server)
		_ = json.NewEncoder(w).Encode(e)
	})
}

// serveEcho serves the echo handler on l, over TLS with cert when cert is
// not nil, until l is closed.
func serveEcho(l net.Listener, server string, log *echoLog, cert *tls.Certificate) *http.Server {
	// A client that refuses the certificate (the untrusted host's point) is
	// expected, not worth a line in the test's output.
	s := &http.Server{Handler: echoHandler(server, log), ErrorLog: stdlog.New(io.Discard, "", 0)}
	if cert != nil {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{"h2", "http/1.1"}}
		go func() { _ = s.ServeTLS(l, "", "") }()
	} else {
		go func() { _ = s.Serve(l) }()
	}
	return s
}

// zone is the test DNS's records: every name of every web host, lower case,
// fully qualified.
type zone map[string][]netip.Addr

// TTL is the time to live of every test DNS answer, in seconds.
const TTL = 60

func (z zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	addrs, ok := z[strings.ToLower(q.Name)]
	if !ok {
		m.Rcode = dns.RcodeNameError
		_ = w.WriteMsg(m)
		return
	}
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: TTL}
	for _, a := range addrs {
		switch {
		case q.Qtype == dns.TypeA && a.Is4():
			h := hdr
			h.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: h, A: a.AsSlice()})
		case q.Qtype == dns.TypeAAAA && a.Is6():
			h := hdr
			h.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: h, AAAA: a.AsSlice()})
		}
	}
	_ = w.WriteMsg(m)
}

// serveDNS serves z on a UDP and a TCP socket until they are closed.
func serveDNS(pc net.PacketConn, l net.Listener, z zone) []*dns.Server {
	udp := &dns.Server{PacketConn: pc, Handler: z}
	tcp := &dns.Server{Listener: l, Handler: z}
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	return []*dns.Server{udp, tcp}
}

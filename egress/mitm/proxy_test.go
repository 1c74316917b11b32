package mitm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/egress"
	"github.com/loftd/loftd/internal/testnet"
)

// rig is an interceptor in front of a test internet: each guest connection
// is a loopback TCP pair whose far end Serve takes, dialing the real server
// from the test internet's client namespace (where the host's network
// stack would).
type rig struct {
	t      *testing.T
	n      *testnet.Net
	p      *Proxy
	secret Secret
	served chan error
}

func newRig(t *testing.T, n *testnet.Net, extraCA bool) *rig {
	t.Helper()
	ca, _, err := NewCA("test interception CA")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSecret("API_TOKEN", []byte("real-secret-value\n"), []string{testnet.Allowed})
	if err != nil {
		t.Fatal(err)
	}
	var extra []*x509.Certificate
	if extraCA {
		if extra, _, err = ExtraCAs([]string{n.CAFile}); err != nil {
			t.Fatal(err)
		}
	}
	roots, err := Roots(extra)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{CA: ca, Secrets: []Secret{s}, Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, n: n, p: p, secret: s, served: make(chan error, 16)}
}

// guestConn returns the guest's end of a connection that Serve handles as
// one to name at port.
func (r *rig) guestConn(ctx context.Context, name string, port int) (net.Conn, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return nil, err
	}
	s, err := l.Accept()
	if err != nil {
		c.Close()
		return nil, err
	}
	addr := net.JoinHostPort(r.n.Addrs(name)[0].String(), strconv.Itoa(port))
	go func() {
		defer s.Close()
		r.served <- r.p.Serve(ctx, s, name, func(ctx context.Context) (net.Conn, error) {
			return r.n.Dial(ctx, "tcp", addr)
		})
	}()
	return c, nil
}

// client is an HTTP client whose every connection goes through the rig as
// one to sni (the guest's TLS trusts only the interception CA). It offers
// h2 too, as curl does, so the test sees the interceptor keep HTTP/1.1.
func (r *rig) client(ctx context.Context, sni string, port int) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(r.p.cfg.CA.Cert)
	return &http.Client{Transport: &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: sni},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return r.guestConn(ctx, sni, port)
		},
	}}
}

func (r *rig) do(ctx context.Context, sni, url string, header http.Header, body []byte) (*http.Response, testnet.Echo, error) {
	port := 443
	if strings.HasPrefix(url, "http:") {
		port = 80
	}
	var rd io.Reader
	method := "GET"
	if body != nil {
		rd, method = bytes.NewReader(body), "POST"
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, testnet.Echo{}, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	cl := r.client(ctx, sni, port)
	defer cl.CloseIdleConnections()
	resp, err := cl.Do(req)
	if err != nil {
		return nil, testnet.Echo{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	var e testnet.Echo
	if err == nil && resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(b, &e)
	}
	return resp, e, err
}

// served is Serve's result for the last connection.
func (r *rig) result() error {
	select {
	case err := <-r.served:
		return err
	case <-time.After(30 * time.Second):
		r.t.Fatal("Serve did not return")
		return nil
	}
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestReplace: the placeholder becomes the value in request headers on TLS
// to the secret's host, as the echo server there sees them (Bearer, a
// custom header, Basic credentials), over HTTP/1.1 even when the guest
// offers h2, with a body intact.
func TestReplace(t *testing.T) {
	n := testnet.New(t)
	r := newRig(t, n, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ph, real := r.secret.Placeholder, string(r.secret.Value)
	if real != "real-secret-value" {
		t.Fatalf("secret value %q: the trailing newline was kept", real)
	}
	tests := []struct {
		header, sent, want string
	}{
		{"Authorization", "Bearer " + ph, "Bearer " + real},
		{"X-Api-Key", ph, real},
		{"Authorization", basic("x-access-token", ph), basic("x-access-token", real)},
		{"X-Plain", "nothing secret", "nothing secret"},
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: curl would ask for 100-continue
	sum := sha256.Sum256(body)
	for _, tt := range tests {
		resp, e, err := r.do(ctx, testnet.Allowed, "https://"+testnet.Allowed+"/replace", http.Header{tt.header: {tt.sent}, "Expect": {"100-continue"}}, body)
		if err != nil {
			t.Fatalf("%s: %v", tt.header, err)
		}
		if err := r.result(); err != nil {
			t.Errorf("Serve: %v", err)
		}
		if got := e.Headers.Get(tt.header); got != tt.want {
			t.Errorf("%s: %q reached the server as %q, want %q", tt.header, tt.sent, got, tt.want)
		}
		if resp.Proto != "HTTP/1.1" || e.Proto != "HTTP/1.1" || e.Server != "allowed" {
			t.Errorf("%s: guest got %s, server %q saw %s; want HTTP/1.1 at allowed", tt.header, resp.Proto, e.Server, e.Proto)
		}
		if e.BodyBytes != int64(len(body)) || e.BodySHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: body reached the server as %d bytes (sha256 %s), want %d", tt.header, e.BodyBytes, e.BodySHA256, len(body))
		}
	}
}

// TestRefuse: the placeholder on its way to another host (by TLS, or in
// clear text even to its own host), a server certificate the host does
// not trust, and an SNI that is not the connection's name are refused and
// reported; the server sees nothing. Without a placeholder, the other host
// is reached untouched.
func TestRefuse(t *testing.T) {
	n := testnet.New(t)
	r := newRig(t, n, true)
	noExtra := newRig(t, n, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ph := r.secret.Placeholder
	tests := []struct {
		what     string
		rig      *rig
		name     string // the connection's name and the guest's SNI
		url      string
		header   http.Header
		reason   egress.Reason // "": allowed
		wantCode int           // the guest's status (0: no response)
	}{
		{"placeholder to another host", r, testnet.Denied, "https://" + testnet.Denied + "/", http.Header{"Authorization": {"Bearer " + ph}}, egress.PlaceholderOut, 403},
		{"placeholder in Basic to another host", r, testnet.Denied, "https://" + testnet.Denied + "/", http.Header{"Authorization": {basic("u", ph)}}, egress.PlaceholderOut, 403},
		{"placeholder in the URL to another host", r, testnet.Denied, "https://" + testnet.Denied + "/?key=" + ph, nil, egress.PlaceholderOut, 403},
		{"placeholder in clear text", r, testnet.Allowed, "http://" + testnet.Allowed + "/", http.Header{"Authorization": {"Bearer " + ph}}, egress.PlaceholderOut, 0},
		{"untrusted server", r, testnet.Untrusted, "https://" + testnet.Untrusted + "/", nil, UpstreamUntrusted, 0},
		{"test CA without --extra-ca", noExtra, testnet.Allowed, "https://" + testnet.Allowed + "/", nil, UpstreamUntrusted, 0},
		{"no placeholder to another host", r, testnet.Denied, "https://" + testnet.Denied + "/", http.Header{"Authorization": {"Bearer other"}}, "", 200},
		{"no placeholder in clear text", r, testnet.Denied, "http://" + testnet.Denied + "/", nil, "", 200},
	}
	for _, tt := range tests {
		before := len(n.Seen(tt.name))
		resp, e, err := tt.rig.do(ctx, tt.name, tt.url, tt.header, nil)
		served := tt.rig.result()
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		if code != tt.wantCode || (tt.wantCode == 0) == (err == nil) {
			t.Errorf("%s: status %d (err %v), want %d", tt.what, code, err, tt.wantCode)
		}
		if tt.reason == "" {
			if served != nil {
				t.Errorf("%s: Serve = %v, want nil", tt.what, served)
			}
			if got := e.Headers.Get("Authorization"); tt.header != nil && got != tt.header.Get("Authorization") {
				t.Errorf("%s: Authorization reached the server as %q", tt.what, got)
			}
			continue
		}
		var d *egress.Denial
		if !errors.As(served, &d) || d.Reason != tt.reason || d.Name != tt.name || d.Port == 0 {
			t.Errorf("%s: Serve = %v, want a denial of %s: %s", tt.what, served, tt.name, tt.reason)
		}
		if got := n.Seen(tt.name); len(got) != before {
			t.Errorf("%s: the server saw %+v", tt.what, got[before:])
		}
	}
}

// TestSNIMismatch: a guest whose SNI is not the name the connection was
// allowed for is refused before any server is dialed.
func TestSNIMismatch(t *testing.T) {
	n := testnet.New(t)
	r := newRig(t, n, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := r.guestConn(ctx, testnet.Allowed, 443)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(r.p.cfg.CA.Cert)
	tc := tls.Client(c, &tls.Config{ServerName: testnet.Denied, RootCAs: pool})
	if err := tc.HandshakeContext(ctx); err == nil {
		t.Error("handshake with SNI denied.test on a connection for allowed.test succeeded")
	}
	tc.Close()
	var d *egress.Denial
	if err := r.result(); !errors.As(err, &d) || d.Reason != egress.NameMismatch {
		t.Errorf("Serve = %v, want a name mismatch", err)
	}
}

// TestKeepAlive: several requests on one intercepted connection, a chunked
// body with a trailer among them, are each rewritten and framed right; a
// placeholder in a later request to another host ends the connection
// without a 403 (a response had started) and is reported.
func TestKeepAlive(t *testing.T) {
	n := testnet.New(t)
	r := newRig(t, n, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ph, real := r.secret.Placeholder, string(r.secret.Value)
	open := func(name string) (*tls.Conn, *bufio.Reader) {
		c, err := r.guestConn(ctx, name, 443)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(r.p.cfg.CA.Cert)
		tc := tls.Client(c, &tls.Config{ServerName: name, RootCAs: pool, NextProtos: []string{"http/1.1"}})
		return tc, bufio.NewReader(tc)
	}
	roundTrip := func(tc *tls.Conn, br *bufio.Reader, raw string) (testnet.Echo, error) {
		if _, err := io.WriteString(tc, raw); err != nil {
			return testnet.Echo{}, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return testnet.Echo{}, err
		}
		defer resp.Body.Close()
		var e testnet.Echo
		return e, json.NewDecoder(resp.Body).Decode(&e)
	}

	tc, br := open(testnet.Allowed)
	reqs := []struct {
		raw        string
		header     string
		wantHeader string
		wantBody   int64
	}{
		{"POST /one HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer " + ph + "\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: t\r\n\r\n",
			"Authorization", "Bearer " + real, 11},
		{"GET /two HTTP/1.1\r\nHost: allowed.test\r\nX-Api-Key: " + ph + "\r\n\r\n", "X-Api-Key", real, 0},
		{"PUT /three HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 3\r\nX-Plain: p\r\n\r\nabc", "X-Plain", "p", 3},
	}
	for i, q := range reqs {
		e, err := roundTrip(tc, br, q.raw)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if got := e.Headers.Get(q.header); got != q.wantHeader || e.BodyBytes != q.wantBody {
			t.Errorf("request %d: %s = %q, body %d bytes; want %q, %d", i+1, q.header, got, e.BodyBytes, q.wantHeader, q.wantBody)
		}
	}
	tc.Close()
	if err := r.result(); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}

	tc, br = open(testnet.Denied)
	if _, err := roundTrip(tc, br, "GET /ok HTTP/1.1\r\nHost: denied.test\r\n\r\n"); err != nil {
		t.Fatalf("first request to denied.test: %v", err)
	}
	if e, err := roundTrip(tc, br, "GET /leak HTTP/1.1\r\nHost: denied.test\r\nCookie: t="+ph+"\r\n\r\n"); err == nil {
		t.Errorf("the placeholder in a second request reached denied.test: %+v", e)
	}
	tc.Close()
	var d *egress.Denial
	if err := r.result(); !errors.As(err, &d) || d.Reason != egress.PlaceholderOut {
		t.Errorf("Serve = %v, want a placeholder denial", err)
	}
	for _, e := range n.Seen(testnet.Denied) {
		if e.Path == "/leak" {
			t.Errorf("denied.test saw %+v", e)
		}
	}
}

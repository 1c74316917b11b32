package mitm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkUpload compares a 16 MiB HTTPS upload and its response through
// the interceptor with the same upload straight to the server (a local TLS
// server; the ratio of the two is the figure, not either time).
func BenchmarkUpload(b *testing.B) {
	serverCA, _, err := NewCA("server CA")
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := serverCA.Leaf("api.example")
	if err != nil {
		b.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*leaf}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Got", r.Header.Get("Authorization"))
		_, _ = io.CopyN(w, zeros{}, n/16)
	})}
	go srv.Serve(l)
	defer srv.Close()
	ca, _, err := NewCA("interception CA")
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewSecret("T", []byte("value"), []string{"api.example"})
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)
	p, err := New(Config{CA: ca, Secrets: []Secret{s}, Roots: roots})
	if err != nil {
		b.Fatal(err)
	}
	dialServer := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", l.Addr().String())
	}
	body := bytes.Repeat([]byte("x"), 16<<20)
	for _, mode := range []string{"direct", "intercepted"} {
		b.Run(mode, func(b *testing.B) {
			pool := x509.NewCertPool()
			pool.AddCert(serverCA.Cert)
			dial := dialServer
			if mode == "intercepted" {
				pool = x509.NewCertPool()
				pool.AddCert(ca.Cert)
				dial = func(ctx context.Context) (net.Conn, error) {
					guest, host := net.Pipe()
					go func() {
						_ = p.Serve(context.Background(), host, "api.example", dialServer)
						host.Close()
					}()
					return guest, nil
				}
			}
			cl := &http.Client{Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "api.example"},
				DialContext:     func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
			}}
			defer cl.CloseIdleConnections()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				req, _ := http.NewRequest("POST", "https://api.example/", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+s.Placeholder)
				resp, err := cl.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if mode == "intercepted" && resp.Header.Get("X-Got") != "Bearer value" {
					b.Fatalf("the server got %q", resp.Header.Get("X-Got"))
				}
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

package mitm

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/egress"
)

func TestHTTPRequestLine(t *testing.T) {
	for in, want := range map[string]bool{
		"GET / HTTP/1.1\r\n":              true,
		"M-SEARCH * HTTP/1.0\n":           true,
		"EHLO host\r\n":                   false,
		"a1 LOGIN user pass\r\n":          false,
		"GET / HTTP/2.0\r\n":              false,
		"GET /a b HTTP/1.1\r\n":           false,
		strings.Repeat("A", 200) + "\r\n": false,
	} {
		if got := httpRequestLine(bufio.NewReaderSize(strings.NewReader(in), 64)); got != want {
			t.Errorf("httpRequestLine(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestLineProtocol: a TLS server that speaks first with a line protocol
// (IMAP-like) works through the interceptor, and a placeholder in it, to a
// host the secret may not go to, ends the connection as a denial before it
// is written.
func TestLineProtocol(t *testing.T) {
	ca, _, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	serverCA, _, err := NewCA("server test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := serverCA.Leaf("imap.example")
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*leaf}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "* OK ready\r\n")
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					got <- sc.Text()
					fmt.Fprintf(c, "GOT %s\r\n", sc.Text())
				}
			}()
		}
	}()
	s, err := NewSecret("T", []byte("v"), []string{"api.example"})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)
	p, err := New(Config{CA: ca, Secrets: []Secret{s}, Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	guest, hostSide := net.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- p.Serve(ctx, hostSide, "imap.example", func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", l.Addr().String())
		})
		hostSide.Close()
	}()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tc := tls.Client(guest, &tls.Config{ServerName: "imap.example", RootCAs: pool})
	defer tc.Close()
	br := bufio.NewReader(tc)
	if line, err := br.ReadString('\n'); err != nil || line != "* OK ready\r\n" {
		t.Fatalf("greeting = %q, %v", line, err)
	}
	fmt.Fprintf(tc, "a1 NOOP\r\n")
	if line, err := br.ReadString('\n'); err != nil || line != "GOT a1 NOOP\r\n" {
		t.Fatalf("answer = %q, %v", line, err)
	}
	fmt.Fprintf(tc, "a2 LOGIN user %s\r\n", s.Placeholder)
	var d *egress.Denial
	select {
	case err := <-served:
		if !errors.As(err, &d) || d.Reason != egress.PlaceholderOut {
			t.Errorf("Serve = %v, want a placeholder denial", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve did not return")
	}
	for {
		select {
		case line := <-got:
			if strings.Contains(line, s.Placeholder) {
				t.Errorf("the server got %q", line)
			}
			continue
		default:
		}
		break
	}
}

package netstack

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
)

// sniffed runs send on the client end of a pipe and sniffs the server
// end; it returns what was announced and every byte the replaying conn
// gives (the stream must reach the server unchanged).
func sniffed(t *testing.T, send func(c net.Conn)) (announced, []byte, []byte) {
	t.Helper()
	client, server := net.Pipe()
	sent := make(chan []byte, 1)
	go func() {
		rec := &recorder{Conn: client}
		send(rec)
		client.Close()
		sent <- rec.b
	}()
	a, conn := sniff(server)
	got, _ := io.ReadAll(conn)
	return a, got, <-sent
}

type recorder struct {
	net.Conn
	b []byte
}

func (r *recorder) Write(p []byte) (int, error) {
	r.b = append(r.b, p...)
	return r.Conn.Write(p)
}

func TestSniff(t *testing.T) {
	tests := []struct {
		name string
		send func(c net.Conn)
		want announced
	}{
		{"tls with sni", func(c net.Conn) {
			c.Write(clientHello(t, "Allowed.Test"))
		}, announced{name: "Allowed.Test", tls: true}},
		{"tls without sni", func(c net.Conn) {
			c.Write(clientHello(t, ""))
		}, announced{tls: true}},
		{"http", func(c net.Conn) {
			io.WriteString(c, "GET /x HTTP/1.1\r\nHost: cdn-b.test:8080\r\nUser-Agent: t\r\n\r\nbody")
		}, announced{name: "cdn-b.test", http: true}},
		{"http that does not parse", func(c net.Conn) {
			io.WriteString(c, "GET /x HTTP/1.1\r\nHost cdn-b.test\r\n\r\n")
		}, announced{http: true, badHTTP: true}},
		{"http after empty lines", func(c net.Conn) {
			io.WriteString(c, "\r\n\r\nGET / HTTP/1.1\r\nHost: evil.test\r\n\r\n")
		}, announced{name: "evil.test", http: true}},
		{"a lowercase method", func(c net.Conn) {
			io.WriteString(c, "get / HTTP/1.1\r\nHost: evil.test\r\n\r\n")
		}, announced{name: "evil.test", http: true}},
		{"http without host", func(c net.Conn) {
			io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
		}, announced{http: true, badHTTP: true}},
		{"h2c preface", func(c net.Conn) {
			io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
		}, announced{http: true, badHTTP: true}},
		{"another protocol", func(c net.Conn) {
			io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n")
		}, announced{}},
		{"nothing", func(c net.Conn) {}, announced{}},
	}
	for _, tt := range tests {
		got, replayed, sent := sniffed(t, tt.send)
		if got != tt.want {
			t.Errorf("%s: sniff() = %+v, want %+v", tt.name, got, tt.want)
		}
		if string(replayed) != string(sent) {
			t.Errorf("%s: the server got %q, the client sent %q", tt.name, replayed, sent)
		}
	}
}

// clientHello is the first flight of crypto/tls's client for sni.
func clientHello(t *testing.T, sni string) []byte {
	t.Helper()
	var rec captureConn
	_ = tls.Client(&rec, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
	if len(rec.b) == 0 || rec.b[0] != 0x16 {
		t.Fatalf("no ClientHello captured: %q", rec.b)
	}
	return rec.b
}

// captureConn records writes and reads EOF.
type captureConn struct {
	readOnlyConn
	b []byte
}

func (c *captureConn) Write(p []byte) (int, error) { c.b = append(c.b, p...); return len(p), nil }
func (c *captureConn) Read([]byte) (int, error)    { return 0, io.EOF }

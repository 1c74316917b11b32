package live

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/loftd/loftd/contract"
	"golang.org/x/crypto/ssh"
)

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeGuest is a stand-in for the guest init's server, built on the same
// x/crypto/ssh: outer requests are recorded, tunnels carry a nested
// connection whose session "exec" echoes its command back.
type fakeGuest struct {
	cfg   *ssh.ServerConfig
	mu    sync.Mutex
	stops []contract.StopRequest
}

func newFakeGuest(t *testing.T, host, client ssh.Signer) *fakeGuest {
	g := &fakeGuest{cfg: &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) != string(client.PublicKey().Marshal()) {
				return nil, io.EOF
			}
			return nil, nil
		},
	}}
	g.cfg.AddHostKey(host)
	return g
}

func (g *fakeGuest) serveOuter(c net.Conn) {
	_, chans, reqs, err := ssh.NewServerConn(c, g.cfg)
	if err != nil {
		return
	}
	go func() {
		for r := range reqs {
			switch r.Type {
			case contract.ReqStop:
				var s contract.StopRequest
				_ = ssh.Unmarshal(r.Payload, &s)
				g.mu.Lock()
				g.stops = append(g.stops, s)
				g.mu.Unlock()
				_ = r.Reply(true, nil)
			case contract.ReqSessions:
				out, _ := json.Marshal([]contract.LiveSession{{ID: "1", Kind: "main", User: "dev"}})
				_ = r.Reply(true, out)
			default:
				_ = r.Reply(false, nil)
			}
		}
	}()
	for nc := range chans {
		if nc.ChannelType() != contract.ChanTunnel {
			_ = nc.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, _ := nc.Accept()
		go ssh.DiscardRequests(creqs)
		go g.serveNested(ch)
	}
}

type chanConn struct {
	ssh.Channel
	net.Conn // only for the address methods; never used for I/O
}

func (c chanConn) Read(b []byte) (int, error)  { return c.Channel.Read(b) }
func (c chanConn) Write(b []byte) (int, error) { return c.Channel.Write(b) }
func (c chanConn) Close() error                { return c.Channel.Close() }

func (g *fakeGuest) serveNested(ch ssh.Channel) {
	a, b := net.Pipe()
	defer a.Close()
	_, chans, reqs, err := ssh.NewServerConn(chanConn{Channel: ch, Conn: a}, g.cfg)
	_ = b
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		s, sreqs, _ := nc.Accept()
		go func() {
			for r := range sreqs {
				if r.Type == "exec" {
					var cmd struct{ Cmd string }
					_ = ssh.Unmarshal(r.Payload, &cmd)
					_ = r.Reply(true, nil)
					data, _ := io.ReadAll(s) // stdin, to its EOF
					_, _ = s.Write(append([]byte(cmd.Cmd+":"), data...))
					_, _ = s.SendRequest("exit-status", false, ssh.Marshal(struct{ S uint32 }{7}))
					s.Close()
				}
			}
		}()
	}
}

func startMux(t *testing.T, hostKey ssh.PublicKey) (*Mux, string, ssh.Signer, *fakeGuest, ssh.Signer) {
	host, client := newSigner(t), newSigner(t)
	if hostKey == nil {
		hostKey = host.PublicKey()
	}
	dir := t.TempDir()
	m, err := Listen(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	g := newFakeGuest(t, host, client)
	hostEnd, guestEnd := socketPair(t)
	go g.serveOuter(guestEnd)
	m.Start(hostEnd, Keys{Client: client, Host: hostKey})
	return m, dir, client, g, host
}

func TestTunnelExec(t *testing.T) {
	_, dir, client, _, host := startMux(t, nil)
	var wg sync.WaitGroup
	for i := range 2 { // two at once, each its own nested connection
		wg.Go(func() {
			c, err := Connect(dir, "dev", client, host.PublicKey())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			s, err := c.NewSession()
			if err != nil {
				t.Error(err)
				return
			}
			payload := strings.Repeat("x", 1<<20+i)
			s.Stdin = strings.NewReader(payload)
			out, err := s.Output("cat")
			var ee *ssh.ExitError
			if !errorsAs(err, &ee) || ee.ExitStatus() != 7 {
				t.Errorf("exit: %v, want status 7", err)
			}
			if string(out) != "cat:"+payload {
				t.Errorf("got %d bytes back, want %d", len(out), len(payload)+4)
			}
		})
	}
	wg.Wait()
}

func TestControl(t *testing.T) {
	m, dir, _, g, _ := startMux(t, nil)
	killed := make(chan struct{})
	m.OnKill = func() { close(killed) }
	tests := []struct {
		req     Request
		wantErr string
	}{
		{Request{Op: OpReady}, ""},
		{Request{Op: OpSessions}, ""},
		{Request{Op: OpStop, Grace: 3}, ""},
		{Request{Op: "reboot"}, `unknown operation "reboot"`},
		{Request{Op: OpKill}, ""},
	}
	for _, tt := range tests {
		rep, err := Ask(dir, tt.req)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err %v, want %q", tt.req.Op, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.req.Op, err)
			continue
		}
		if tt.req.Op == OpSessions && (len(rep.Sessions) != 1 || rep.Sessions[0].Kind != "main") {
			t.Errorf("sessions: %+v", rep.Sessions)
		}
	}
	<-killed
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.stops) != 1 || g.stops[0].GraceSeconds != 3 {
		t.Errorf("stops the guest got: %+v, want one with grace 3", g.stops)
	}
}

// A guest presenting another host key is refused: nothing reaches it, and
// every client is told why.
func TestPinnedHostKey(t *testing.T) {
	_, dir, _, _, _ := startMux(t, newSigner(t).PublicKey())
	_, err := Ask(dir, Request{Op: OpReady})
	if err == nil || !strings.Contains(err.Error(), "host key mismatch") {
		t.Fatalf("ready with a wrong host key: %v", err)
	}
}

// A socket path longer than sockaddr_un takes is bound and dialled through
// its directory's descriptor.
func TestLongSocketPath(t *testing.T) {
	dir := t.TempDir() + "/" + strings.Repeat("d", 100)
	if err := mkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	m, err := Listen(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m.fail(io.ErrUnexpectedEOF)
	if _, err := Ask(dir, Request{Op: OpReady}); err == nil || !strings.Contains(err.Error(), io.ErrUnexpectedEOF.Error()) {
		t.Fatalf("ask over a long path: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

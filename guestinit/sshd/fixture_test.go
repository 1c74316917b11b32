package sshd

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/loftd/loftd/contract"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// testUID is who sessions run as when the tests run as root: nobody, so a
// test sees the credential drop.
const testUID = 65534

func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case SFTPArg:
			os.Exit(SFTPMain())
		case proxyArg: // OpenSSH's ProxyCommand in TestOpenSSHClient
			os.Exit(proxyMain(os.Args[2]))
		}
	}
	os.Exit(m.Run())
}

// fixture is a server with one outer connection from a test "helper".
type fixture struct {
	srv       *Server
	hostKey   ssh.Signer
	clientKey ssh.Signer
	clientPEM []byte
	user      User
	base      string // world-traversable directory of the test's files
	outer     *ssh.Client
	stops     chan contract.StopRequest
}

func newKey(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, pem.EncodeToMemory(blk)
}

// newFixture starts a server (held may be nil) and connects to it as the
// helper does, over a socketpair.
func newFixture(t *testing.T, held *Held) *fixture {
	t.Helper()
	f := &fixture{stops: make(chan contract.StopRequest, 1)}
	f.hostKey, _ = newKey(t)
	f.clientKey, f.clientPEM = newKey(t)
	base, err := os.MkdirTemp("", "sshd-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	f.base = base
	home := filepath.Join(base, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if os.Geteuid() == 0 {
		uid, gid = testUID, testUID
		if err := os.Chown(home, testUID, testUID); err != nil {
			t.Fatal(err)
		}
	}
	f.user = User{Name: "dev", UID: uid, GID: gid, Home: home, Shell: "/bin/sh",
		Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}}
	f.srv, err = New(Config{HostKey: f.hostKey, AuthorizedKeys: []ssh.PublicKey{f.clientKey.PublicKey()},
		// Exe is left to its default, /proc/self/exe, as in the guest:
		// nobody re-executes the test binary through it although go
		// test's build directory is 0700.
		User: f.user, Held: held, Dir: home,
		OnStop: func(r contract.StopRequest) { f.stops <- r },
		Logf:   t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	a, b := socketpair(t)
	go func() { _ = f.srv.ServeOuter(b) }()
	f.outer = f.client(t, a, "loftd")
	t.Cleanup(func() { f.outer.Close() })
	return f
}

func mustExe(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func socketpair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		file := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(file)
		file.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}

func (f *fixture) clientConfig(user string, key ssh.Signer) *ssh.ClientConfig {
	return &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(f.hostKey.PublicKey())}
}

func (f *fixture) client(t *testing.T, conn net.Conn, user string) *ssh.Client {
	t.Helper()
	c, chans, reqs, err := ssh.NewClientConn(conn, "loftd", f.clientConfig(user, f.clientKey))
	if err != nil {
		t.Fatalf("ssh handshake as %s: %v", user, err)
	}
	return ssh.NewClient(c, chans, reqs)
}

// tunnel opens a nested connection's byte stream through the outer one.
func (f *fixture) tunnel(t *testing.T) net.Conn {
	t.Helper()
	ch, reqs, err := f.outer.OpenChannel(contract.ChanTunnel, nil)
	if err != nil {
		t.Fatalf("open %s: %v", contract.ChanTunnel, err)
	}
	go ssh.DiscardRequests(reqs)
	return asNetConn(ch)
}

// dial logs in as user through a tunnel.
func (f *fixture) dial(t *testing.T, user string) *ssh.Client {
	t.Helper()
	c := f.client(t, f.tunnel(t), user)
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs cmd in a new session and returns stdout, stderr and the exit
// status (ExitError's, 0 or -1 for any other error).
func run(t *testing.T, c *ssh.Client, cmd string, stdin io.Reader, env ...string) (string, string, int) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		if err := s.Setenv(name, val); err != nil {
			t.Fatalf("setenv %s: %v", name, err)
		}
	}
	var out, errb strings.Builder
	s.Stdout, s.Stderr, s.Stdin = &out, &errb, stdin
	status := exitCode(t, s.Run(cmd), &out, &errb)
	return out.String(), errb.String(), status
}

func exitCode(t *testing.T, err error, out, errb *strings.Builder) int {
	t.Helper()
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return 0
	case asExit(err, &ee):
		return ee.ExitStatus()
	default:
		t.Errorf("session: %v (stdout %q, stderr %q)", err, out.String(), errb.String())
		return -1
	}
}

func asExit(err error, ee **ssh.ExitError) bool {
	e, ok := err.(*ssh.ExitError)
	if ok {
		*ee = e
	}
	return ok
}

// lineWaiter reads r in the background and lets a test wait for a string
// to have appeared in it.
type lineWaiter struct {
	mu   sync.Mutex
	cond *sync.Cond
	buf  strings.Builder
	eof  bool
}

func newWaiter(r io.Reader) *lineWaiter {
	w := &lineWaiter{}
	w.cond = sync.NewCond(&w.mu)
	go func() {
		br := bufio.NewReader(r)
		b := make([]byte, 4096)
		for {
			n, err := br.Read(b)
			w.mu.Lock()
			w.buf.Write(b[:n])
			if err != nil {
				w.eof = true
			}
			w.cond.Broadcast()
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return w
}

// waitFor blocks until s has been read, or fails at EOF without it.
func (w *lineWaiter) waitFor(t *testing.T, s string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for !strings.Contains(w.buf.String(), s) {
		if w.eof {
			t.Fatalf("output ended without %q: %q", s, w.buf.String())
		}
		w.cond.Wait()
	}
}

func (w *lineWaiter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

package guestinit

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/guestinit/sshd"
	"github.com/loftd/loftd/internal/testenv"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// liveServer is a running SSH server for the end rule's tests and a
// function that opens a nested connection to it.
func liveServer(t *testing.T) (*live, func() *ssh.Client) {
	t.Helper()
	_, hk, _ := ed25519.GenerateKey(rand.Reader)
	_, ck, _ := ed25519.GenerateKey(rand.Reader)
	host, _ := ssh.NewSignerFromKey(hk)
	client, _ := ssh.NewSignerFromKey(ck)
	srv, err := sshd.New(sshd.Config{HostKey: host, AuthorizedKeys: []ssh.PublicKey{client.PublicKey()},
		User: sshd.User{Name: "dev", UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Home: "/", Shell: "/bin/sh"}})
	if err != nil {
		t.Fatal(err)
	}
	l := &live{ready: make(chan struct{}), srv: srv, stopped: make(chan struct{})}
	close(l.ready)
	dial := func() *ssh.Client {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		conns := make([]net.Conn, 2)
		for i, fd := range fds {
			f := os.NewFile(uintptr(fd), "socketpair")
			conns[i], err = net.FileConn(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		go func() { _ = srv.ServeNested(conns[1]) }()
		c, chans, reqs, err := ssh.NewClientConn(conns[0], "loftd", &ssh.ClientConfig{User: "dev",
			Auth: []ssh.AuthMethod{ssh.PublicKeys(client)}, HostKeyCallback: ssh.FixedHostKey(host.PublicKey())})
		if err != nil {
			t.Fatal(err)
		}
		return ssh.NewClient(c, chans, reqs)
	}
	return l, dial
}

// ended runs awaitEnd in the background; the channel closes when it returns.
func ended(e *enter) <-chan struct{} {
	done := make(chan struct{})
	go func() { defer close(done); e.awaitEnd() }()
	return done
}

func TestAwaitEndTunnels(t *testing.T) {
	l, dial := liveServer(t)
	e := &enter{live: l}
	c := dial()
	// A round trip: the server counts the connection by now.
	if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Fatal(err)
	}
	done := ended(e)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s.Output("echo still up"); err != nil || string(out) != "still up\n" {
		t.Errorf("session while the VM waits: %q, %v", out, err)
	}
	select {
	case <-done:
		t.Fatal("the VM ended with a nested connection open")
	default:
	}
	c.Close()
	<-done // returns once the connection is gone
}

func TestAwaitEndDetached(t *testing.T) {
	for _, tc := range []struct {
		name  string
		guest contract.Guest
		stop  bool
	}{
		{"idle timeout", contract.Guest{Detached: true, IdleTimeout: 1}, false},
		{"stop", contract.Guest{Detached: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, dial := liveServer(t)
			e := &enter{live: l, guest: tc.guest}
			c := dial()
			if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
				t.Fatal(err)
			}
			done := ended(e)
			c.Close()
			for n, changed := l.srv.Tunnels(); n != 0; n, changed = l.srv.Tunnels() {
				<-changed
			}
			if tc.stop {
				select {
				case <-done:
					t.Fatal("a detached VM without idle timeout ended with no connection")
				default:
				}
				close(l.stopped) // what live.stop does after its kill sequence
			}
			<-done
		})
	}
}

// TestAwaitEndNoServer: a VM whose server is off (older host) or not up
// yet ends with its main command, as before live sessions.
func TestAwaitEndNoServer(t *testing.T) {
	off := &live{ready: make(chan struct{}), stopped: make(chan struct{})}
	close(off.ready)
	<-ended(&enter{live: off, guest: contract.Guest{Detached: true}})
	notYet := &live{ready: make(chan struct{}), stopped: make(chan struct{})}
	<-ended(&enter{live: notYet})
	<-ended(&enter{})
}

func TestSessionUser(t *testing.T) {
	a := account{Name: "alice", UID: 1001, GID: 1002, Home: "/home/alice", Shell: "/bin/bash", Groups: []int{5, 44}}
	u := sessionUser(a, []string{"PATH=/bin", "HOME=/root", "FOO=1", "USER=root"}, []string{"FOO=1"})
	if u.Name != "alice" || u.UID != 1001 || u.GID != 1002 || !slices.Equal(u.Groups, []uint32{5, 44}) || u.Shell != "/bin/bash" {
		t.Errorf("sessionUser = %+v", u)
	}
	for _, want := range []string{"PATH=/bin", "FOO=1", "HOME=/home/alice", "USER=alice", "XDG_RUNTIME_DIR=/run/user/1001"} {
		if !slices.Contains(u.Env, want) {
			t.Errorf("env %q lacks %s", u.Env, want)
		}
	}
}

// TestOpenControlPort finds the control port by its name under /sys, as
// the stdio ports are found, and reports a missing one.
func TestOpenControlPort(t *testing.T) {
	root := t.TempDir()
	if _, err := openControl(root, true); err == nil {
		t.Fatal("openControl with no port: no error")
	}
	for name, port := range map[string]string{"vport1p1": contract.PortStatus, "vport1p5": contract.PortControl} {
		dir := root + "/sys/class/virtio-ports/" + name
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/name", []byte(port+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(root+"/dev", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root+"/dev/vport1p5", nil, 0o600); err != nil { // a file stands for the device
		t.Fatal(err)
	}
	f, err := openControl(root, true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Name() != root+"/dev/vport1p5" {
		t.Errorf("control port opened %s, want %s/dev/vport1p5", f.Name(), root)
	}
}

// TestCheckedSpawner: a session started as a user passes the privilege
// drop check and keeps its status.
func TestCheckedSpawner(t *testing.T) {
	testenv.RequireRoot(t)
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer devnull.Close()
	_, done, err := checkedSpawner{newReaper()}.Start("/bin/sh", []string{"sh", "-c", `test "$(id -u)" = 65534 && exit 6`},
		&os.ProcAttr{Files: []*os.File{devnull, devnull, devnull},
			Sys: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitStatus(<-done); got != 6 {
		t.Errorf("status %d, want 6", got)
	}
}

package sshd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/internal/testenv"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// TestSFTP puts and gets a file; it is written by the session's user.
func TestSFTP(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t, "dev")
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	wd, err := sc.Getwd()
	if err != nil || wd != f.user.Home {
		t.Errorf("sftp working directory %q (%v), want the home %s", wd, err, f.user.Home)
	}
	data := make([]byte, 3<<20+17)
	_, _ = rand.Read(data)
	w, err := sc.Create("put.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(f.user.Home, "put.bin")
	got, err := os.ReadFile(local)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("put: %d bytes on disk (%v), want %d", len(got), err, len(data))
	}
	var st syscall.Stat_t
	if err := syscall.Stat(local, &st); err != nil || st.Uid != f.user.UID {
		t.Errorf("put file owned by uid %d (%v), want the session user's %d", st.Uid, err, f.user.UID)
	}
	r, err := sc.Open("put.bin")
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(back, data) {
		t.Errorf("get: %d bytes (%v), want %d", len(back), err, len(data))
	}
	if os.Geteuid() == 0 {
		// Not root: the sftp server cannot write where only root may.
		if _, err := sc.Create("/etc/loftd-sftp-test"); err == nil {
			os.Remove("/etc/loftd-sftp-test")
			t.Error("sftp as the user created a file in /etc")
		}
	}
}

func TestDirectTCPIP(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t, "dev")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		b, _ := io.ReadAll(conn) // until the client's EOF
		_, _ = conn.Write(append([]byte("echo:"), b...))
	}()
	conn, err := c.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = conn.(interface{ CloseWrite() error }).CloseWrite()
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "echo:ping" {
		t.Errorf("through direct-tcpip: %q, %v", got, err)
	}
	if _, err := c.Dial("tcp", "127.0.0.1:1"); err == nil {
		t.Error("direct-tcpip to a closed port succeeded")
	}
}

// TestAgentForwarding lists the client's agent keys with ssh-add in the
// session, through SSH_AUTH_SOCK.
func TestAgentForwarding(t *testing.T) {
	testenv.RequireCommand(t, "ssh-add", "openssh-client")
	f := newFixture(t, nil)
	c := f.dial(t, "dev")
	keyring := agent.NewKeyring()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv, Comment: "forwarded-test-key"}); err != nil {
		t.Fatal(err)
	}
	if err := agent.ForwardToAgent(c, keyring); err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := agent.RequestAgentForwarding(s); err != nil {
		t.Fatal(err)
	}
	out, err := s.CombinedOutput(`stat -c '%u %a' "$(dirname "$SSH_AUTH_SOCK")"; ssh-add -l`)
	want := fmt.Sprintf("%d 700\n", f.user.UID)
	if err != nil || !strings.HasPrefix(string(out), want) || !strings.Contains(string(out), "forwarded-test-key") {
		t.Errorf("agent in the session: %v\n%s\nwant %q and the key's comment", err, out, want)
	}
}

// rawAttach opens a session channel attached to the held session (with a
// pty of cols x rows when cols > 0) and returns it, its output and its
// exit status (sent once the session ends): x/crypto's Session cannot wait
// for a subsystem.
func rawAttach(t *testing.T, c *ssh.Client, cols, rows uint32) (ssh.Channel, *lineWaiter, <-chan int) {
	t.Helper()
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	status := make(chan int, 1)
	go func() {
		for r := range reqs {
			switch r.Type {
			case "exit-status":
				var st struct{ Status uint32 }
				_ = ssh.Unmarshal(r.Payload, &st)
				status <- int(st.Status)
			case "exit-signal":
				var sig struct{ Signal string }
				_ = ssh.Unmarshal(r.Payload, &sig)
				n, _ := signalNumber(sig.Signal)
				status <- 128 + int(n)
			}
		}
		close(status) // a status of 0 from here: none was sent
	}()
	if cols > 0 {
		ok, err := ch.SendRequest("pty-req", true, ssh.Marshal(ptyRequest{Term: "xterm", Cols: cols, Rows: rows}))
		if !ok || err != nil {
			t.Fatalf("pty-req: %v %v", ok, err)
		}
	}
	w := newWaiter(ch)
	ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{contract.SubsystemAttach}))
	if !ok || err != nil {
		t.Fatalf("subsystem %s: %v %v", contract.SubsystemAttach, ok, err)
	}
	return ch, w, status
}

// TestAttach holds a main command on a pty, attaches twice while it runs
// (the second replays what the first saw) and once after it ended.
func TestAttach(t *testing.T) {
	master, slave, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{"sh", "-c", `echo before; read x; echo "got $x"; stty size; exit 4`}
	_, done, err := DirectSpawner{}.Start("/bin/sh", argv, &os.ProcAttr{Files: []*os.File{slave, slave, slave},
		Sys: &syscall.SysProcAttr{Setsid: true, Setctty: true}})
	slave.Close()
	if err != nil {
		t.Fatal(err)
	}
	h := NewHeld(master, "dev", argv)
	f := newFixture(t, h)
	c := f.dial(t, "dev")

	ch1, w1, _ := rawAttach(t, c, 0, 0)
	w1.waitFor(t, "before")
	ch1.Close() // detach
	ch2, w2, st2 := rawAttach(t, c, 90, 30)
	w2.waitFor(t, "before") // replayed
	sessions := f.srv.Sessions()
	if len(sessions) == 0 || sessions[0].Kind != "main" || sessions[0].ID != "main" {
		t.Errorf("sessions while held: %+v", sessions)
	}
	fmt.Fprint(ch2, "hello\r")
	w2.waitFor(t, "got hello")
	h.End(<-done)
	w2.waitFor(t, "30 90")
	if st := <-st2; st != 4 {
		t.Errorf("attached session ended with status %d, want 4", st)
	}
	_, w3, st3 := rawAttach(t, c, 0, 0)
	if st := <-st3; st != 4 {
		t.Errorf("attach after the end: status %d, want 4", st)
	}
	w3.waitFor(t, "got hello")
	if !h.Ended() {
		t.Error("Ended() false after End")
	}
	for _, ls := range f.srv.Sessions() {
		if ls.Kind == "main" {
			t.Errorf("main session still listed after its end: %+v", ls)
		}
	}
}

// TestRing keeps only the latest RingSize bytes.
func TestRing(t *testing.T) {
	h := &Held{attached: map[*attachment]bool{}}
	chunk := bytes.Repeat([]byte("x"), 100<<10)
	for i := 0; i < 3; i++ {
		h.output(chunk)
	}
	h.output([]byte("tail"))
	if len(h.ring) != RingSize || !bytes.HasSuffix(h.ring, []byte("xtail")) {
		t.Errorf("ring: %d bytes ending %q, want %d ending xtail", len(h.ring), h.ring[len(h.ring)-5:], RingSize)
	}
}

// TestAttachRedraw: each attach sends SIGWINCH to the held session's
// foreground program even when the size did not change, so a full-screen
// program redraws.
func TestAttachRedraw(t *testing.T) {
	master, slave, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{"sh", "-c", `n=0; trap 'n=$((n+1)); echo winch$n' WINCH; echo ready; while :; do sleep 0.05; done`}
	pid, done, err := DirectSpawner{}.Start("/bin/sh", argv, &os.ProcAttr{Files: []*os.File{slave, slave, slave},
		Sys: &syscall.SysProcAttr{Setsid: true, Setctty: true}})
	slave.Close()
	if err != nil {
		t.Fatal(err)
	}
	h := NewHeld(master, "dev", argv)
	f := newFixture(t, h)
	c := f.dial(t, "dev")
	// The trap is set once "ready" is out (an attach before it would
	// signal a shell that ignores SIGWINCH).
	for !bytes.Contains(h.snapshot(), []byte("ready")) {
		time.Sleep(10 * time.Millisecond)
	}
	ch1, w1, _ := rawAttach(t, c, 80, 24)
	w1.waitFor(t, "winch1")
	ch1.Close()
	_, w2, st := rawAttach(t, c, 80, 24) // the same size
	w2.waitFor(t, "winch2")
	_ = syscall.Kill(pid, syscall.SIGKILL)
	h.End(<-done)
	if got := <-st; got != 128+9 {
		t.Errorf("status after SIGKILL: %d, want 137", got)
	}
}

// TestHeldHangup: Hangup ends an interactive shell on the held pty, which
// SIGTERM would not.
func TestHeldHangup(t *testing.T) {
	// The shell must get SIGHUP's default action, as under the guest init.
	// A test run under nohup(1) has SIGHUP ignored, and an ignored signal
	// stays ignored across exec: the shell lived and the test hung. Notify
	// installs a handler instead, which exec resets to the default.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	master, slave, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{"sh", "-i"}
	_, done, err := DirectSpawner{}.Start("/bin/sh", argv, &os.ProcAttr{Files: []*os.File{slave, slave, slave},
		Env: []string{"PS1=prompt$ "}, Sys: &syscall.SysProcAttr{Setsid: true, Setctty: true}})
	slave.Close()
	if err != nil {
		t.Fatal(err)
	}
	h := NewHeld(master, "dev", argv)
	for !bytes.Contains(h.snapshot(), []byte("prompt$")) {
		time.Sleep(10 * time.Millisecond)
	}
	h.Hangup()
	ws := <-done
	h.End(ws)
	if !ws.Signaled() || ws.Signal() != syscall.SIGHUP {
		t.Errorf("shell after Hangup: %v, want killed by SIGHUP", ws)
	}
}

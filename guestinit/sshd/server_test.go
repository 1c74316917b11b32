package sshd

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/contract"
	"golang.org/x/crypto/ssh"
)

func TestExecStatus(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t, "dev")
	for _, tc := range []struct {
		cmd    string
		status int
		out    string
	}{
		{"exit 0", 0, ""},
		{"echo hi; exit 3", 3, "hi\n"},
		{"id -u", 0, fmt.Sprintf("%d\n", f.user.UID)},
		{"no-such-command-here", 127, ""},
		{"kill -TERM $$", 128 + 15, ""}, // exit-signal TERM
		{"kill -KILL $$", 128 + 9, ""},
		{"kill -SYS $$", 128 + 31, ""}, // not an RFC 4254 name: exit-status 159
		{"exit 255", 255, ""},
	} {
		out, _, status := run(t, c, tc.cmd, nil)
		if status != tc.status || out != tc.out {
			t.Errorf("%q: status %d, stdout %q; want %d, %q", tc.cmd, status, out, tc.status, tc.out)
		}
	}
}

func TestExecEnvAndDir(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t, "dev")
	out, errOut, status := run(t, c, `echo "$FOO|$HOME|$USER|$LANG|$(pwd)"`, nil, "FOO=bar baz", "LANG=C")
	want := fmt.Sprintf("bar baz|%s|dev|C|%s\n", f.user.Home, f.user.Home)
	if status != 0 || out != want {
		t.Errorf("status %d, stdout %q (stderr %q); want %q", status, out, errOut, want)
	}
	// TERM comes with a pty only, not from the user's environment.
	f.srv.cfg.User.Env = append(f.srv.cfg.User.Env, "TERM=host-term")
	if out, _, _ = run(t, f.dial(t, "dev"), `echo "[$TERM]"`, nil); out != "[]\n" {
		t.Errorf("TERM without a pty: %q", out)
	}
	out, _, _ = run(t, c, "pwd", nil, contract.EnvWorkdir+"=/")
	if out != "/\n" {
		t.Errorf("with %s=/: pwd %q", contract.EnvWorkdir, out)
	}
}

func TestStdinEOF(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t, "dev")
	out, _, status := run(t, c, "cat; echo end", strings.NewReader("hello "))
	if status != 0 || out != "hello end\n" {
		t.Errorf("status %d, stdout %q; want 0, %q", status, out, "hello end\n")
	}
}

// TestLargeOutput sends 30 MiB through stdin and back through stdout, and
// 30 MiB from a file through stdout then a line on stderr and a status:
// every byte arrives, before the status.
func TestLargeOutput(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t, "dev")
	data := make([]byte, 30<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	file := filepath.Join(f.base, "data")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cmd string
		stdin     io.Reader
		status    int
	}{
		{"stdin to stdout", "cat", bytes.NewReader(data), 0},
		{"file to stdout", "cat " + file + "; echo end >&2; exit 5", nil, 5},
	} {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		var n countWriter
		var errb strings.Builder
		s.Stdout, s.Stderr, s.Stdin = io.MultiWriter(h, &n), &errb, tc.stdin
		err = s.Run(tc.cmd)
		s.Close()
		var out strings.Builder
		if status := exitCode(t, err, &out, &errb); status != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, status, tc.status)
		}
		if got := h.Sum(nil); !bytes.Equal(got, want[:]) || n != countWriter(len(data)) {
			t.Errorf("%s: got %d bytes with sha256 %x, want %d bytes with %x", tc.name, n, got, len(data), want)
		}
		if tc.stdin == nil && errb.String() != "end\n" {
			t.Errorf("%s: stderr %q", tc.name, errb.String())
		}
	}
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func TestConcurrentSessions(t *testing.T) {
	f := newFixture(t, nil)
	c1 := f.dial(t, "dev")
	c2 := f.dial(t, "dev")
	// A waits for a line that is sent only after B (same connection) and C
	// (another connection) have ended.
	sa, err := c1.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, err := sa.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var outA strings.Builder
	sa.Stdout = &outA
	if err := sa.Start("read x; echo A$x"); err != nil {
		t.Fatal(err)
	}
	if out, _, st := run(t, c1, "echo B", nil); out != "B\n" || st != 0 {
		t.Errorf("B: %q %d", out, st)
	}
	if out, _, st := run(t, c2, "echo C", nil); out != "C\n" || st != 0 {
		t.Errorf("C: %q %d", out, st)
	}
	fmt.Fprintln(in, "1")
	if err := sa.Wait(); err != nil || outA.String() != "A1\n" {
		t.Errorf("A: %v, %q", err, outA.String())
	}
}

func TestPTY(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t, "dev")
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestPty("xterm-test", 40, 100, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	out, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := newWaiter(out)
	err = s.Start(`trap 'echo size $(stty size); exit 7' WINCH; echo "term=$TERM $(stty size) tty=$(test -t 0 && echo yes)"; read line; echo "read=$line"; while :; do sleep 0.05; done`)
	if err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "term=xterm-test 40 100 tty=yes")
	fmt.Fprint(in, "typed\r")
	w.waitFor(t, "read=typed")
	if err := s.WindowChange(50, 120); err != nil {
		t.Fatal(err)
	}
	err = s.Wait()
	var ee *ssh.ExitError
	if !asExit(err, &ee) || ee.ExitStatus() != 7 {
		t.Errorf("exit: %v, want status 7", err)
	}
	w.waitFor(t, "size 50 120")
}

func TestSignal(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t, "dev")
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := newWaiter(out)
	if err := s.Start("trap 'echo got USR1; exit 9' USR1; echo ready; while :; do sleep 0.05; done"); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "ready")
	if err := s.Signal(ssh.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	err = s.Wait()
	var ee *ssh.ExitError
	if !asExit(err, &ee) || ee.ExitStatus() != 9 {
		t.Errorf("exit: %v, want status 9", err)
	}
	w.waitFor(t, "got USR1")
}

func TestAuthRefused(t *testing.T) {
	f := newFixture(t, nil)
	other, _ := newKey(t)
	for _, tc := range []struct {
		user string
		key  ssh.Signer
		ok   bool
	}{
		{"dev", f.clientKey, true},
		{"root", f.clientKey, true},
		{"daemon", f.clientKey, false},
		{"dev", other, false},
		{"root", other, false},
	} {
		c, chans, reqs, err := ssh.NewClientConn(f.tunnel(t), "loftd", f.clientConfig(tc.user, tc.key))
		if (err == nil) != tc.ok {
			t.Errorf("login %s with key %s: err %v, want ok=%v", tc.user, ssh.FingerprintSHA256(tc.key.PublicKey()), err, tc.ok)
		}
		if err == nil {
			ssh.NewClient(c, chans, reqs).Close()
		}
	}
	// The outer connection wants an authorized key too.
	a, b := socketpair(t)
	go func() { _ = f.srv.ServeOuter(b) }()
	if _, _, _, err := ssh.NewClientConn(a, "loftd", f.clientConfig("loftd", other)); err == nil {
		t.Error("outer connection with an unauthorized key: accepted")
	}
}

func TestRootSession(t *testing.T) {
	f := newFixture(t, nil)
	if os.Geteuid() != 0 {
		t.Log("not root: a root login is accepted but cannot run anything; checked in TestAuthRefused")
		return
	}
	out, _, st := run(t, f.dial(t, "root"), "id -u; echo $HOME", nil)
	if out != "0\n/root\n" || st != 0 {
		t.Errorf("as root: %q, status %d", out, st)
	}
}

func TestSessionsAndStop(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t, "dev")
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	out, _ := s.StdoutPipe()
	w := newWaiter(out)
	if err := s.Start("echo started; read x"); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "started")
	ok, payload, err := f.outer.SendRequest(contract.ReqSessions, true, nil)
	if err != nil || !ok {
		t.Fatalf("%s: ok=%v err=%v", contract.ReqSessions, ok, err)
	}
	var ls []contract.LiveSession
	if err := json.Unmarshal(payload, &ls); err != nil {
		t.Fatalf("%s reply %q: %v", contract.ReqSessions, payload, err)
	}
	if len(ls) != 1 || ls[0].Kind != "exec" || ls[0].User != "dev" || len(ls[0].Command) != 1 || ls[0].Command[0] != "echo started; read x" || ls[0].TTY || ls[0].Started.IsZero() {
		t.Errorf("sessions: %+v", ls)
	}
	if n, _ := f.srv.Tunnels(); n != 1 {
		t.Errorf("Tunnels() = %d with one nested connection", n)
	}
	fmt.Fprintln(in)
	_ = s.Wait()

	ok, _, err = f.outer.SendRequest(contract.ReqStop, true, ssh.Marshal(contract.StopRequest{GraceSeconds: 7}))
	if err != nil || !ok {
		t.Fatalf("%s: ok=%v err=%v", contract.ReqStop, ok, err)
	}
	if got := <-f.stops; got.GraceSeconds != 7 {
		t.Errorf("OnStop got %+v", got)
	}
	c.Close()
	for n, changed := f.srv.Tunnels(); n != 0; n, changed = f.srv.Tunnels() {
		<-changed
	}
}

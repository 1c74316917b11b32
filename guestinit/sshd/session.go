package sshd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/loftd/loftd/contract"
	"golang.org/x/crypto/ssh"
)

// ptyDrainQuiet is how long a pty session's output is read on after its
// process ended when something it left running keeps the pty open: what
// the process wrote is already buffered, so this only waits for the last
// read to come back empty.
const ptyDrainQuiet = 100 * time.Millisecond

// session is one session channel of a nested connection.
type session struct {
	c  *nestedConn
	ch ssh.Channel

	mu      sync.Mutex
	env     []string
	term    string
	tty     bool
	cols    uint32
	rows    uint32
	master  *os.File // the pty's master once a pty session runs
	attach  *attachment
	untrack func() // an attach's entry in the sessions
	pid     int
	started bool
	ended   bool
}

type ptyRequest struct {
	Term                   string
	Cols, Rows, Width, Hgt uint32
	Modes                  string
}

type winchRequest struct {
	Cols, Rows, Width, Hgt uint32
}

// session serves one session channel: its requests, then the one program
// (shell, exec or subsystem) it runs.
func (c *nestedConn) session(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	s := &session{c: c, ch: ch}
	for r := range reqs {
		ok, then := s.request(r)
		if r.WantReply {
			_ = r.Reply(ok, nil)
		}
		if then != nil {
			// The program starts after the reply: one that ended at
			// once would close the channel before it.
			go then()
		}
	}
	// The client closed the channel: hang up what still runs, as a
	// terminal that goes away does.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pid > 0 && !s.ended {
		_ = syscall.Kill(s.pid, syscall.SIGHUP)
	}
	if s.attach != nil {
		s.attach.detach()
	}
	if s.untrack != nil {
		s.untrack()
	}
}

func (s *session) request(r *ssh.Request) (bool, func()) {
	switch r.Type {
	case "shell":
		return s.start("shell", nil)
	case "exec":
		var cmd struct{ Command string }
		if ssh.Unmarshal(r.Payload, &cmd) != nil {
			return false, nil
		}
		return s.start("exec", &cmd.Command)
	case "subsystem":
		var sub struct{ Name string }
		if ssh.Unmarshal(r.Payload, &sub) != nil {
			return false, nil
		}
		switch sub.Name {
		case "sftp":
			return s.start("sftp", nil)
		case contract.SubsystemAttach:
			return s.startAttach()
		}
		return false, nil
	}
	return s.setting(r), nil
}

// setting handles the requests that start nothing.
func (s *session) setting(r *ssh.Request) bool {
	switch r.Type {
	case "env":
		var kv struct{ Name, Value string }
		if ssh.Unmarshal(r.Payload, &kv) != nil || kv.Name == "" || strings.ContainsAny(kv.Name, "=\x00") {
			return false
		}
		s.mu.Lock()
		s.env = append(s.env, kv.Name+"="+kv.Value)
		s.mu.Unlock()
		return true
	case "pty-req":
		var p ptyRequest
		if ssh.Unmarshal(r.Payload, &p) != nil {
			return false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.started {
			return false
		}
		s.tty, s.term, s.cols, s.rows = true, p.Term, p.Cols, p.Rows
		return true
	case "window-change":
		var w winchRequest
		if ssh.Unmarshal(r.Payload, &w) != nil {
			return false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cols, s.rows = w.Cols, w.Rows
		if s.master != nil {
			SetWinsize(s.master, w.Cols, w.Rows)
		}
		if s.attach != nil {
			s.attach.resize(w.Cols, w.Rows)
		}
		return true
	case "signal":
		var sig struct{ Signal string }
		if ssh.Unmarshal(r.Payload, &sig) != nil {
			return false
		}
		n, ok := signalNumber(sig.Signal)
		s.mu.Lock()
		defer s.mu.Unlock()
		if !ok || s.pid <= 0 || s.ended {
			return false
		}
		return syscall.Kill(s.pid, n) == nil
	case "auth-agent-req@openssh.com":
		return s.c.startAgent() == nil
	}
	return false
}

// start runs the session's program in the background; false when one
// already runs or it could not start (the channel is then closed).
func (s *session) start(kind string, command *string) (bool, func()) {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return false, nil
	}
	s.started = true
	s.mu.Unlock()
	u := s.c.user
	shell := u.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	var argv []string
	path := shell
	switch kind {
	case "shell":
		argv = []string{"-" + filepath.Base(shell)} // a login shell, as sshd runs it
	case "exec":
		argv = []string{filepath.Base(shell), "-c", *command}
	case "sftp":
		path, argv = s.c.s.cfg.Exe, []string{"loftd-guest-init", SFTPArg}
	}
	ls := contract.LiveSession{Kind: kind, User: u.Name, TTY: s.tty && kind != "sftp"}
	if command != nil {
		ls.Command = []string{*command}
	}
	untrack := s.c.s.track(ls)
	return true, func() {
		defer untrack()
		var err error
		if ls.TTY {
			err = s.runPTY(path, argv)
		} else {
			err = s.runPipes(path, argv, kind == "sftp")
		}
		if err != nil {
			fmt.Fprintf(s.ch.Stderr(), "loftd: %v\r\n", err)
			sendExit(s.ch, syscall.WaitStatus(uint32(contract.ExitSetup)<<8))
			_ = s.ch.Close()
		}
	}
}

// procAttr is the start of a session's process: the user's credentials,
// environment and working directory.
func (s *session) procAttr(files []*os.File, sftp bool) (*os.ProcAttr, error) {
	u := s.c.user
	sys := &syscall.SysProcAttr{Setsid: true}
	if os.Geteuid() == 0 {
		sys.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: append([]uint32{}, u.Groups...)}
		if sys.Credential.Groups == nil {
			sys.Credential.Groups = []uint32{}
		}
	} else if u.UID != uint32(os.Geteuid()) {
		return nil, fmt.Errorf("cannot run as %s (uid %d): the server is not root", u.Name, u.UID)
	}
	s.mu.Lock()
	env := s.environ()
	s.mu.Unlock()
	dir := s.c.s.cfg.Dir
	if wd := lookupEnv(env, contract.EnvWorkdir); wd != "" {
		dir = wd
	}
	if sftp || dir == "" || !isDir(dir) {
		dir = u.Home
	}
	if !isDir(dir) {
		dir = "/"
	}
	return &os.ProcAttr{Dir: dir, Env: env, Files: files, Sys: sys}, nil
}

// environ is the user's environment with its own HOME, USER, LOGNAME and
// SHELL, then the client's variables, TERM and SSH_AUTH_SOCK.
func (s *session) environ() []string {
	u := s.c.user
	set := map[string]string{"HOME": u.Home, "USER": u.Name, "LOGNAME": u.Name, "SHELL": u.Shell}
	for _, kv := range s.env {
		name, val, _ := strings.Cut(kv, "=")
		set[name] = val
	}
	if s.tty && s.term != "" {
		set["TERM"] = s.term
	}
	if sock := s.c.agentSocket(); sock != "" {
		set["SSH_AUTH_SOCK"] = sock
	}
	var env []string
	for _, kv := range u.Env {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := set[name]; !ok && (name != "TERM" || s.tty) {
			// TERM is the pty's: the workload's may name the host's
			// terminal, which a session without a pty does not have.
			env = append(env, kv)
		}
	}
	for name, val := range set {
		if val != "" || name == "TERM" {
			env = append(env, name+"="+val)
		}
	}
	return env
}

func lookupEnv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// runPipes runs a session without a pty: stdin, stdout and stderr are
// pipes copied to and from the channel; exit-status follows the last
// byte of both outputs.
func (s *session) runPipes(path string, argv []string, sftp bool) error {
	var fds [6]*os.File // stdin r/w, stdout r/w, stderr r/w
	for i := 0; i < 6; i += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(fds[:i])
			return err
		}
		fds[i], fds[i+1] = r, w
	}
	inR, inW, outR, outW, errR, errW := fds[0], fds[1], fds[2], fds[3], fds[4], fds[5]
	attr, err := s.procAttr([]*os.File{inR, outW, errW}, sftp)
	if err != nil {
		closeAll(fds[:])
		return err
	}
	s.mu.Lock()
	pid, done, err := s.c.s.cfg.Spawner.Start(path, argv, attr)
	s.pid = pid
	s.mu.Unlock()
	closeAll([]*os.File{inR, outW, errW}) // the child's ends
	if err != nil {
		closeAll([]*os.File{inW, outR, errR})
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() {
		_, _ = io.Copy(inW, s.ch)
		inW.Close() // EOF from the client is EOF on stdin
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(s.ch, outR); outR.Close() }()
	go func() { defer wg.Done(); _, _ = io.Copy(s.ch.Stderr(), errR); errR.Close() }()
	ws := <-done
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	wg.Wait()
	s.finish(ws)
	return nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// runPTY runs a session on a new pty whose master is copied to and from
// the channel.
func (s *session) runPTY(path string, argv []string) error {
	master, slave, err := OpenPTY()
	if err != nil {
		return err
	}
	s.mu.Lock()
	SetWinsize(master, s.cols, s.rows)
	s.mu.Unlock()
	attr, err := s.procAttr([]*os.File{slave, slave, slave}, false)
	if err != nil {
		master.Close()
		slave.Close()
		return err
	}
	attr.Sys.Setctty = true
	attr.Sys.Ctty = 0
	s.mu.Lock()
	pid, done, err := s.c.s.cfg.Spawner.Start(path, argv, attr)
	s.pid = pid
	if err == nil {
		s.master = master
	}
	s.mu.Unlock()
	slave.Close()
	if err != nil {
		master.Close()
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() { _, _ = io.Copy(master, s.ch) }()
	out := make(chan struct{})
	go func() {
		defer close(out)
		copyPTY(s.ch, master, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.ended {
				_ = master.SetReadDeadline(time.Now().Add(ptyDrainQuiet))
			}
		})
	}()
	ws := <-done
	// Read on until the pty is drained: EIO once no process holds the
	// slave, or a quiet read when one still does.
	s.mu.Lock()
	s.ended = true
	_ = master.SetReadDeadline(time.Now().Add(ptyDrainQuiet))
	s.mu.Unlock()
	<-out
	master.Close()
	s.finish(ws)
	return nil
}

// copyPTY copies a pty master to w until EIO (no slave left), a deadline
// that passed with nothing to read, or an error; each read that brings
// bytes moves a set deadline on.
func copyPTY(w io.Writer, master *os.File, read func()) {
	buf := make([]byte, 32<<10)
	for {
		n, err := master.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			read()
		}
		if err != nil { // EIO, os.ErrDeadlineExceeded, closed
			return
		}
	}
}

// finish sends the exit, EOF and closes the channel.
func (s *session) finish(ws syscall.WaitStatus) {
	_ = s.ch.CloseWrite()
	sendExit(s.ch, ws)
	_ = s.ch.Close()
}

// sendExit reports a wait status as OpenSSH does: exit-status for an exit,
// exit-signal for a death by a signal RFC 4254 names (clients make it
// 128+n); any other signal is exit-status 128+n, so the number is exact.
func sendExit(ch ssh.Channel, ws syscall.WaitStatus) {
	if ws.Signaled() {
		if name, ok := signalName(ws.Signal()); ok {
			_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{name, ws.CoreDump(), "", ""}))
			return
		}
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(contract.ExitSignalBase + int(ws.Signal()))}))
		return
	}
	_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(ws.ExitStatus())}))
}

// The signals RFC 4254 names, by their names without "SIG".
var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP,
	"ILL": syscall.SIGILL, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE,
	"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

func signalNumber(name string) (syscall.Signal, bool) {
	n, ok := signals[strings.TrimPrefix(name, "SIG")]
	return n, ok
}

func signalName(sig syscall.Signal) (string, bool) {
	for name, n := range signals {
		if n == sig {
			return name, true
		}
	}
	return "", false
}

package liveclient

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/loftd/loftd/helper/live"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Streams are a command's stdio on the host; Terminal is the terminal of
// a -t session (nil without one).
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Terminal       *os.File
}

// ExecOptions is one command run in the running VM.
type ExecOptions struct {
	Command []string // none: the user's login shell
	Env     []string // NAME=VALUE, sent as env requests
	User    string   // the guest user, or "root"
	Workdir string   // "" : the guest's default (/workspace)
	TTY     bool     // a pty in the guest, the host terminal raw
	Stdin   bool     // -i: the host's stdin reaches the command (else EOF at once)
	Term    string   // TERM for the pty
}

// Exec runs o in the VM of the task directory task and returns the
// command's exit status (128+n when signal n ended it). Stop signals the
// host gets are forwarded as SSH signal requests; SIGWINCH becomes a
// window-change. Stdout and stderr arrive whole before Exec returns.
func Exec(task string, keys *Keys, o ExecOptions, s Streams) (int, error) {
	c, err := live.Connect(task, o.User, keys.Client, keys.Host.PublicKey())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		return 0, fmt.Errorf("exec: open a session: %w", err)
	}
	defer sess.Close()
	for _, kv := range o.Env {
		name, val, _ := strings.Cut(kv, "=")
		if err := sess.Setenv(name, val); err != nil {
			return 0, fmt.Errorf("exec: the guest refused the variable %s: %w", name, err)
		}
	}
	if o.TTY && s.Terminal != nil {
		restore, err := ttySession(sess, s.Terminal, o.Term)
		if err != nil {
			return 0, err
		}
		defer restore()
	} else if o.TTY {
		if err := sess.RequestPty(o.Term, 24, 80, ssh.TerminalModes{}); err != nil {
			return 0, fmt.Errorf("exec: pty: %w", err)
		}
	}
	sess.Stdout, sess.Stderr = s.Stdout, s.Stderr
	stdin, err := sess.StdinPipe()
	if err != nil {
		return 0, err
	}
	stopSigs := forwardSignals(sess)
	defer stopSigs()
	cmd := ShellCommand(o.Command, o.Workdir)
	if cmd == "" {
		err = sess.Shell()
	} else {
		err = sess.Start(cmd)
	}
	if err != nil {
		return 0, fmt.Errorf("exec: start %q: %w", cmd, err)
	}
	go func() {
		if o.Stdin && s.Stdin != nil {
			_, _ = io.Copy(stdin, s.Stdin)
		}
		_ = stdin.Close()
	}()
	return ExitStatus(sess.Wait())
}

// ExitStatus maps an ssh session's end to a process exit status.
func ExitStatus(err error) (int, error) {
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		if sig := ee.Signal(); sig != "" {
			if n := unix.SignalNum("SIG" + sig); n != 0 {
				return 128 + int(n), nil
			}
		}
		return ee.ExitStatus(), nil
	case errors.As(err, &missing):
		return 0, errors.New("the VM ended the command without an exit status (the VM stopped?)")
	}
	return 0, err
}

// ShellCommand is the exec request's command line for argv: each word
// single-quoted for the guest user's shell (which runs it, as sshd does),
// after a cd to workdir. An empty argv without workdir is "" (a shell).
func ShellCommand(argv []string, workdir string) string {
	var b strings.Builder
	if workdir != "" {
		b.WriteString("cd -- " + quote(workdir) + " || exit 125; ")
		if len(argv) == 0 {
			b.WriteString(`exec "${SHELL:-/bin/sh}" -l`)
		}
	}
	if len(argv) > 0 {
		b.WriteString("exec")
		for _, a := range argv {
			b.WriteString(" " + quote(a))
		}
	}
	return b.String()
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// stopSignalNames are the host signals forwarded to the command, by their
// SSH names (RFC 4254 6.10).
var stopSignalNames = map[os.Signal]ssh.Signal{
	syscall.SIGINT: ssh.SIGINT, syscall.SIGTERM: ssh.SIGTERM,
	syscall.SIGHUP: ssh.SIGHUP, syscall.SIGQUIT: ssh.SIGQUIT,
	syscall.SIGUSR1: ssh.SIGUSR1, syscall.SIGUSR2: ssh.SIGUSR2,
}

func forwardSignals(sess *ssh.Session) (stop func()) {
	ch := make(chan os.Signal, 8)
	for s := range stopSignalNames {
		signal.Notify(ch, s)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case s := <-ch:
				_ = sess.Signal(stopSignalNames[s])
			case <-done:
				return
			}
		}
	})
	return func() {
		signal.Stop(ch)
		close(done)
		wg.Wait()
	}
}

// ttySession asks for a pty of the terminal's size, puts the terminal in
// raw mode and follows its size (SIGWINCH → window-change).
func ttySession(sess *ssh.Session, tty *os.File, termName string) (restore func(), err error) {
	w, h := termSize(tty)
	if err := sess.RequestPty(termName, h, w, ssh.TerminalModes{}); err != nil {
		return nil, fmt.Errorf("pty: %w", err)
	}
	return rawTerminal(tty, func(h, w int) { _ = sess.WindowChange(h, w) })
}

func termSize(tty *os.File) (w, h int) {
	w, h, err := term.GetSize(int(tty.Fd()))
	if err != nil {
		return 80, 24
	}
	return w, h
}

// rawTerminal puts tty in raw mode and calls resized with its new size on
// every SIGWINCH, until restore.
func rawTerminal(tty *os.File, resized func(h, w int)) (restore func(), err error) {
	fd := int(tty.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("raw terminal: %w", err)
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				if w, h, err := term.GetSize(fd); err == nil {
					resized(h, w)
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(done)
		_ = term.Restore(fd, old)
	}, nil
}

func isTTY(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

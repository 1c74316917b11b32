package liveclient

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/helper/live"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// DefaultDetachKeys is Podman's (and Docker's) detach sequence.
const DefaultDetachKeys = "ctrl-p,ctrl-q"

// ParseDetachKeys reads a detach sequence in Podman's form: comma-separated
// keys, each "ctrl-X" (X a letter or one of @[\]^_) or a single character.
// "" disables detaching.
func ParseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case len(k) == 6 && strings.HasPrefix(strings.ToLower(k), "ctrl-"):
			c := k[5]
			switch {
			case c >= 'a' && c <= 'z':
				out = append(out, c-'a'+1)
			case c >= '@' && c <= '_': // @, A-Z, [, \, ], ^, _
				out = append(out, c-'@')
			default:
				return nil, fmt.Errorf("detach keys %q: %q is not a control key (ctrl-a … ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_)", s, k)
			}
		default:
			return nil, fmt.Errorf("detach keys %q: %q is neither ctrl-X nor one character", s, k)
		}
	}
	return out, nil
}

// ErrDetached is Attach's end when the user typed the detach keys.
var ErrDetached = errors.New("detached")

// Attach attaches the terminal to the VM's held main session
// (contract.SubsystemAttach): the guest replays the screen, then relays
// both ways until the main session ends (its exit status is returned) or
// the user types keys (ErrDetached; the VM keeps running). It drives the
// session channel itself: x/crypto's Session cannot wait for a subsystem.
func Attach(task string, keys *Keys, user string, keySeq []byte, s Streams, termName string) (int, error) {
	c, err := live.Connect(task, user, keys.Client, keys.Host.PublicKey())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		return 0, fmt.Errorf("attach: open a session: %w", err)
	}
	defer ch.Close()
	if s.Terminal != nil {
		w, h := termSize(s.Terminal)
		req := ptyRequest{Term: termName, Columns: uint32(w), Rows: uint32(h), Modes: string([]byte{0})}
		if ok, err := ch.SendRequest("pty-req", true, ssh.Marshal(&req)); err != nil || !ok {
			return 0, fmt.Errorf("attach: the guest refused the pty (%v)", err)
		}
	}
	if ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(&struct{ Name string }{contract.SubsystemAttach})); err != nil || !ok {
		return 0, fmt.Errorf("attach: the VM has no held session to attach to (started with a command and without -d?) (%v)", err)
	}
	if s.Terminal != nil {
		restore, err := rawTerminal(s.Terminal, func(h, w int) {
			_, _ = ch.SendRequest("window-change", false, ssh.Marshal(&windowChange{Columns: uint32(w), Rows: uint32(h)}))
		})
		if err != nil {
			return 0, fmt.Errorf("attach: %w", err)
		}
		defer restore()
	}
	var out sync.WaitGroup
	out.Go(func() { _, _ = io.Copy(s.Stdout, ch) })
	out.Go(func() { _, _ = io.Copy(s.Stderr, ch.Stderr()) })
	detached := make(chan struct{})
	go func() {
		if s.Stdin == nil {
			return
		}
		f := &detachFilter{w: ch, keys: keySeq}
		if _, err := io.Copy(f, s.Stdin); errors.Is(err, ErrDetached) {
			close(detached)
			_ = ch.Close()
		}
		// The terminal's EOF is not the end of the held session: it
		// keeps running, as after a detach.
	}()
	status, statusErr := -1, error(nil)
	for r := range reqs {
		switch r.Type {
		case "exit-status":
			var m struct{ Status uint32 }
			if ssh.Unmarshal(r.Payload, &m) == nil {
				status = int(m.Status)
			}
		case "exit-signal":
			var m struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}
			if ssh.Unmarshal(r.Payload, &m) == nil {
				status = 128 + int(unix.SignalNum("SIG"+m.Signal))
			}
		}
		if r.WantReply {
			_ = r.Reply(false, nil)
		}
	}
	select {
	case <-detached:
		return 0, ErrDetached
	default:
	}
	out.Wait()
	if status < 0 {
		statusErr = errors.New("the held session ended without an exit status (the VM stopped?)")
	}
	return status, statusErr
}

// ptyRequest and windowChange are RFC 4254 6.2 and 6.7.
type ptyRequest struct {
	Term          string
	Columns, Rows uint32
	Width, Height uint32
	Modes         string
}

type windowChange struct {
	Columns, Rows, Width, Height uint32
}

// detachFilter passes bytes to w until the detach sequence is typed; a
// partial match is held back and passed on once it stops matching.
type detachFilter struct {
	w       io.Writer
	keys    []byte
	matched int
}

func (f *detachFilter) Write(p []byte) (int, error) {
	if len(f.keys) == 0 {
		return f.w.Write(p)
	}
	out := make([]byte, 0, len(p)+len(f.keys))
	for _, b := range p {
		if b == f.keys[f.matched] {
			f.matched++
			if f.matched == len(f.keys) {
				if len(out) > 0 {
					if _, err := f.w.Write(out); err != nil {
						return 0, err
					}
				}
				return 0, ErrDetached
			}
			continue
		}
		out = append(out, f.keys[:f.matched]...)
		f.matched = 0
		if b == f.keys[0] {
			f.matched = 1
			continue
		}
		out = append(out, b)
	}
	if len(out) > 0 {
		if _, err := f.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// StdinTerminal is the process's terminal when stdin and stdout are one.
func StdinTerminal() *os.File {
	if isTTY(os.Stdin) && isTTY(os.Stdout) {
		return os.Stdin
	}
	return nil
}

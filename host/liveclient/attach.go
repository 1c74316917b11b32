package liveclient

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/helper/live"
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
// the user types keys (ErrDetached; the VM keeps running).
func Attach(task string, keys *Keys, user string, keySeq []byte, s Streams, termName string) (int, error) {
	c, err := live.Connect(task, user, keys.Client, keys.Host.PublicKey())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		return 0, fmt.Errorf("attach: open a session: %w", err)
	}
	defer sess.Close()
	if s.Terminal != nil {
		restore, err := ttySession(sess, s.Terminal, termName)
		if err != nil {
			return 0, fmt.Errorf("attach: %w", err)
		}
		defer restore()
	}
	sess.Stdout, sess.Stderr = s.Stdout, s.Stderr
	stdin, err := sess.StdinPipe()
	if err != nil {
		return 0, err
	}
	if err := sess.RequestSubsystem(contract.SubsystemAttach); err != nil {
		return 0, fmt.Errorf("attach: the VM has no held session to attach to (it was started with a command and without -d?): %w", err)
	}
	detached := make(chan struct{})
	go func() {
		if s.Stdin != nil {
			f := &detachFilter{w: stdin, keys: keySeq}
			_, err := io.Copy(f, s.Stdin)
			if errors.Is(err, ErrDetached) {
				close(detached)
				_ = sess.Close()
				return
			}
		}
		// The terminal's EOF (a closed stdin) is not the end of the
		// held session: it keeps running, like a detach.
	}()
	werr := sess.Wait()
	select {
	case <-detached:
		return 0, ErrDetached
	default:
	}
	return ExitStatus(werr)
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

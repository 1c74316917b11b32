package sshd

import (
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/loftd/loftd/contract"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// RingSize is how much of the held session's latest output an attach
// replays.
const RingSize = 256 << 10

// Held is the held main session (contract.EnvHold): the main command runs
// on a pty whose master the init keeps; its output goes to a ring buffer
// and to every attached channel, and each attached channel's input goes to
// the pty. Detaching is the client's: it closes its channel.
type Held struct {
	master *os.File
	info   contract.LiveSession

	mu       sync.Mutex
	ring     []byte // the latest output, at most RingSize bytes
	attached map[*attachment]bool
	ended    bool
	status   syscall.WaitStatus
	pumped   chan struct{} // the master has been read to its end
	drain    bool          // the main command ended: read until quiet
}

// attachment is one channel attached to the held session.
type attachment struct {
	h  *Held
	ch ssh.Channel
}

// NewHeld holds master, the pty of the main command (user, argv), and
// starts reading it.
func NewHeld(master *os.File, user string, argv []string) *Held {
	h := &Held{master: master, attached: map[*attachment]bool{}, pumped: make(chan struct{}),
		info: contract.LiveSession{ID: "main", Kind: "main", User: user, Command: argv, TTY: true, Started: time.Now().UTC()}}
	go h.pump()
	return h
}

func (h *Held) pump() {
	defer close(h.pumped)
	buf := make([]byte, 32<<10)
	for {
		n, err := h.master.Read(buf)
		if n > 0 {
			h.output(buf[:n])
		}
		if err != nil { // EIO: no slave left; a deadline: quiet after the end
			return
		}
	}
}

// output keeps b in the ring and writes it to every attached channel; a
// channel that fails is dropped. An attached client that does not read
// holds the session up, as a terminal that does not read would.
func (h *Held) output(b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring = append(h.ring, b...)
	if over := len(h.ring) - RingSize; over > 0 {
		h.ring = append(h.ring[:0:0], h.ring[over:]...)
	}
	for a := range h.attached {
		if _, err := a.ch.Write(b); err != nil {
			delete(h.attached, a)
		}
	}
	if h.drain {
		_ = h.master.SetReadDeadline(time.Now().Add(ptyDrainQuiet))
	}
}

// End records the main command's status once it has been reaped: the
// output is read to its end, then every attached channel gets the
// exit-status and is closed; later attaches replay and get it at once.
func (h *Held) End(ws syscall.WaitStatus) {
	h.mu.Lock()
	h.drain = true
	_ = h.master.SetReadDeadline(time.Now().Add(ptyDrainQuiet))
	h.mu.Unlock()
	<-h.pumped
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended, h.status = true, ws
	for a := range h.attached {
		a.end(ws)
	}
	h.attached = map[*attachment]bool{}
}

// snapshot returns a copy of the ring.
func (h *Held) snapshot() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]byte(nil), h.ring...)
}

// Ended reports whether the main command has ended.
func (h *Held) Ended() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ended
}

func (h *Held) session() (contract.LiveSession, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.info, !h.ended
}

// attach replays the ring to ch, then relays the pty both ways.
func (h *Held) attach(ch ssh.Channel, cols, rows uint32) *attachment {
	a := &attachment{h: h, ch: ch}
	if cols > 0 && rows > 0 {
		SetWinsize(h.master, cols, rows)
	}
	// A full-screen program redraws on SIGWINCH, which the kernel sends
	// only when the size changed: the replay alone may not restore it.
	h.winch()
	h.mu.Lock()
	defer h.mu.Unlock()
	_, _ = ch.Write(h.ring)
	if h.ended {
		a.end(h.status)
		return a
	}
	h.attached[a] = true
	go func() { _, _ = io.Copy(h.master, ch) }()
	return a
}

// Hangup sends SIGHUP to the held pty's session, as a terminal that goes
// away does: an interactive shell ignores SIGTERM but not that.
func (h *Held) Hangup() {
	_ = control(h.master, func(fd int) error {
		sid, err := unix.IoctlGetInt(fd, unix.TIOCGSID)
		if err != nil || sid <= 0 {
			return err
		}
		return unix.Kill(-sid, unix.SIGHUP)
	})
}

// winch sends SIGWINCH to the pty's foreground process group.
func (h *Held) winch() {
	_ = control(h.master, func(fd int) error {
		pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
		if err != nil || pgrp <= 0 {
			return err
		}
		return unix.Kill(-pgrp, unix.SIGWINCH)
	})
}

func (a *attachment) end(ws syscall.WaitStatus) {
	_ = a.ch.CloseWrite()
	sendExit(a.ch, ws)
	_ = a.ch.Close()
}

func (a *attachment) resize(cols, rows uint32) { SetWinsize(a.h.master, cols, rows) }

func (a *attachment) detach() {
	a.h.mu.Lock()
	defer a.h.mu.Unlock()
	delete(a.h.attached, a)
}

// startAttach attaches the session's channel to the held main session.
func (s *session) startAttach() (bool, func()) {
	h := s.c.s.cfg.Held
	s.mu.Lock()
	defer s.mu.Unlock()
	if h == nil || s.started {
		return false, nil
	}
	s.started = true
	s.untrack = s.c.s.track(contract.LiveSession{Kind: "attach", User: s.c.user.Name, TTY: s.tty})
	return true, func() {
		s.mu.Lock()
		cols, rows := s.cols, s.rows
		s.mu.Unlock()
		a := h.attach(s.ch, cols, rows)
		s.mu.Lock()
		s.attach = a
		s.mu.Unlock()
		if a.h.Ended() {
			return
		}
		// A window-change that came between the two locks.
		s.mu.Lock()
		if s.cols != cols || s.rows != rows {
			a.resize(s.cols, s.rows)
		}
		s.mu.Unlock()
	}
}

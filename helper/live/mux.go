// Package live is the host end of a VM's control channel (issue 19): the
// helper is the SSH client of the guest init's server on it (the "outer"
// connection), and muxes local clients onto it. Each connection to the
// task's tunnel socket becomes one contract.ChanTunnel channel, its bytes
// copied both ways, so `loftd exec`, `loftd attach` and OpenSSH (through
// `loftd ssh-proxy`) speak SSH end to end with the guest; the helper never
// reads what they say. The control socket answers loftd's own questions
// (ready, sessions, stop, kill) with one JSON line each.
//
// The sockets are created before the VM boots and before the helper
// confines itself; afterwards the mux only accepts, reads and writes on
// descriptors it already has.
package live

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/loftd/loftd/contract"
	"golang.org/x/crypto/ssh"
)

// The sockets in the task directory (mode 0600, in the 0700 task dir).
const (
	TunnelSocket  = "live.sock"
	ControlSocket = "control.sock"
)

// OuterUser is the user name of the outer connection; the guest accepts it
// with the workspace's client key like any nested root login.
const OuterUser = "root"

// Keys are what the outer connection authenticates with: the workspace's
// client key, and the host key the guest must present (pinned).
type Keys struct {
	Client ssh.Signer
	Host   ssh.PublicKey
}

// Mux is one VM's tunnel and control sockets and its outer connection.
type Mux struct {
	dir              string
	log              *slog.Logger
	tunnels, control *net.UnixListener
	// OnKill ends the VM at once (the backend's cancel); nil refuses kill.
	OnKill func()

	ready chan struct{} // closed when the outer connection is up or failed
	once  sync.Once
	mu    sync.Mutex
	conn  ssh.Conn // the outer connection, once up
	err   error    // why it is not (set before ready closes)
	wg    sync.WaitGroup
}

// Listen creates the task's sockets in dir and starts accepting: a client
// that connects before the guest is up waits for it.
func Listen(dir string, log *slog.Logger) (*Mux, error) {
	m := &Mux{dir: dir, log: log, ready: make(chan struct{})}
	var err error
	if m.tunnels, err = listenUnix(filepath.Join(dir, TunnelSocket)); err != nil {
		return nil, err
	}
	if m.control, err = listenUnix(filepath.Join(dir, ControlSocket)); err != nil {
		m.tunnels.Close()
		return nil, err
	}
	m.wg.Go(func() { m.accept(m.tunnels, m.tunnel) })
	m.wg.Go(func() { m.accept(m.control, m.answer) })
	return m, nil
}

// Start runs the outer SSH handshake on port (the control channel's host
// end) in the background. Outer channels from the guest are refused.
func (m *Mux) Start(port net.Conn, keys Keys) {
	go func() {
		cfg := &ssh.ClientConfig{
			User:            OuterUser,
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(keys.Client)},
			HostKeyCallback: ssh.FixedHostKey(keys.Host),
			Config:          ssh.Config{Ciphers: PreferredCiphers},
		}
		c, chans, reqs, err := ssh.NewClientConn(port, "loftd-guest", cfg)
		if err != nil {
			port.Close()
			m.fail(fmt.Errorf("control channel: %w", err))
			return
		}
		go ssh.DiscardRequests(reqs)
		go func() {
			for nc := range chans {
				_ = nc.Reject(ssh.Prohibited, "the host accepts no channels")
			}
		}()
		m.mu.Lock()
		m.conn = c
		m.mu.Unlock()
		m.once.Do(func() { close(m.ready) })
		m.log.Debug("live: control channel up")
		err = c.Wait()
		m.log.Debug("live: control channel ended", "err", err)
	}()
}

// fail marks the outer connection as failed (or never started): waiting
// clients are told why and disconnected.
func (m *Mux) fail(err error) {
	m.once.Do(func() {
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
		close(m.ready)
	})
}

// outer waits for the outer connection and returns it.
func (m *Mux) outer() (ssh.Conn, error) {
	<-m.ready
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn == nil {
		if m.err == nil {
			return nil, errors.New("the VM has no control channel")
		}
		return nil, m.err
	}
	return m.conn, nil
}

// Close stops accepting, ends the outer connection and removes the
// sockets. Tunnels in flight end with it.
func (m *Mux) Close() error {
	m.fail(errors.New("the VM ended"))
	m.tunnels.Close()
	m.control.Close()
	m.mu.Lock()
	if m.conn != nil {
		m.conn.Close()
	}
	m.mu.Unlock()
	var errs []error
	for _, name := range []string{TunnelSocket, ControlSocket} {
		if err := os.Remove(filepath.Join(m.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Mux) accept(ln *net.UnixListener, serve func(*net.UnixConn)) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return // closed
		}
		go serve(c)
	}
}

// tunnel carries one local connection over a ChanTunnel channel, both
// ways, each direction's EOF passed on as a half close so that no byte
// in flight is dropped.
func (m *Mux) tunnel(c *net.UnixConn) {
	defer c.Close()
	conn, err := m.outer()
	if err != nil {
		m.log.Debug("live: tunnel refused", "err", err)
		return
	}
	ch, reqs, err := conn.OpenChannel(contract.ChanTunnel, nil)
	if err != nil {
		m.log.Debug("live: open tunnel", "err", err)
		return
	}
	go ssh.DiscardRequests(reqs)
	defer ch.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(ch, c)
		_ = ch.CloseWrite()
	})
	_, _ = io.Copy(c, ch)
	_ = c.CloseWrite()
	wg.Wait()
}

// Request is one control socket request (one JSON line).
type Request struct {
	Op    string `json:"op"` // OpReady, OpSessions, OpStop, OpKill
	Grace uint32 `json:"grace,omitempty"`
}

// Reply is the control socket's answer (one JSON line).
type Reply struct {
	Error    string                 `json:"error,omitempty"`
	Sessions []contract.LiveSession `json:"sessions,omitempty"`
}

// The control socket's operations.
const (
	OpReady    = "ready"    // wait until the guest's server is up (or failed)
	OpSessions = "sessions" // the guest's live sessions
	OpStop     = "stop"     // SIGTERM, grace, SIGKILL, power off
	OpKill     = "kill"     // end the VM at once
)

// maxRequest bounds a control request line: the socket is 0600, yet a
// client is still only a client.
const maxRequest = 4096

func (m *Mux) answer(c *net.UnixConn) {
	defer c.Close()
	line, err := bufio.NewReader(io.LimitReader(c, maxRequest)).ReadBytes('\n')
	if err != nil {
		return
	}
	var req Request
	var rep Reply
	if err := json.Unmarshal(line, &req); err != nil {
		rep.Error = fmt.Sprintf("bad request: %v", err)
	} else if err := m.do(req, &rep); err != nil {
		rep.Error = err.Error()
	}
	out, _ := json.Marshal(rep)
	_, _ = c.Write(append(out, '\n'))
}

func (m *Mux) do(req Request, rep *Reply) error {
	if req.Op == OpKill {
		if m.OnKill == nil {
			return errors.New("kill is not supported by this VM")
		}
		m.log.Debug("live: kill requested")
		m.OnKill()
		return nil
	}
	conn, err := m.outer()
	if err != nil {
		return err
	}
	switch req.Op {
	case OpReady:
		return nil
	case OpSessions:
		ok, payload, err := conn.SendRequest(contract.ReqSessions, true, nil)
		if err != nil || !ok {
			return fmt.Errorf("sessions: the guest refused (%v)", err)
		}
		if err := json.Unmarshal(payload, &rep.Sessions); err != nil {
			return fmt.Errorf("sessions: the guest's answer: %w", err)
		}
		return nil
	case OpStop:
		m.log.Debug("live: stop requested", "grace", req.Grace)
		ok, _, err := conn.SendRequest(contract.ReqStop, true, ssh.Marshal(contract.StopRequest{GraceSeconds: req.Grace}))
		if err != nil || !ok {
			return fmt.Errorf("stop: the guest refused (%v)", err)
		}
		return nil
	}
	return fmt.Errorf("unknown operation %q", req.Op)
}

package sshd

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/loftd/loftd/contract"
	"golang.org/x/crypto/ssh"
)

// nestedConn is the state of one nested connection.
type nestedConn struct {
	s    *Server
	sc   *ssh.ServerConn
	user User

	mu       sync.Mutex
	agentDir string
	agentLn  net.Listener
}

// cleanup removes the connection's agent socket.
func (c *nestedConn) cleanup() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.agentLn != nil {
		c.agentLn.Close()
		os.RemoveAll(c.agentDir)
	}
}

// directTCPIP serves ssh -L: a connection from the guest (as the init) to
// the address the client names, copied both ways.
func (c *nestedConn) directTCPIP(nc ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil || p.Port == 0 || p.Port > 65535 {
		_ = nc.Reject(ssh.ConnectionFailed, "bad direct-tcpip request")
		return
	}
	addr := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, fmt.Sprintf("connect %s: %v", addr, err))
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		conn.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	defer c.s.track(contract.LiveSession{Kind: "forward", User: c.user.Name, Command: []string{addr}})()
	splice(ch, conn.(*net.TCPConn))
}

// halfCloser is a stream whose write side closes alone.
type halfCloser interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// splice copies a and b both ways, passing each EOF on, until both
// directions ended.
func splice(a, b halfCloser) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(a, b); _ = a.CloseWrite() }()
	go func() { defer wg.Done(); _, _ = io.Copy(b, a); _ = b.CloseWrite() }()
	wg.Wait()
	a.Close()
	b.Close()
}

// startAgent serves agent forwarding for the connection: a unix socket in
// a 0700 directory of the user's, each of whose connections becomes an
// auth-agent@openssh.com channel to the client. The sessions that start
// after it get SSH_AUTH_SOCK.
func (c *nestedConn) startAgent() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.agentLn != nil {
		return nil
	}
	dir, err := os.MkdirTemp(agentBase(), "ssh-")
	if err != nil {
		return err
	}
	sock := filepath.Join(dir, "agent")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	if os.Geteuid() == 0 {
		for _, p := range []string{dir, sock} {
			if err := os.Lchown(p, int(c.user.UID), int(c.user.GID)); err != nil {
				ln.Close()
				os.RemoveAll(dir)
				return err
			}
		}
	}
	c.agentDir, c.agentLn = dir, ln
	go func() {
		defer c.s.track(contract.LiveSession{Kind: "agent", User: c.user.Name})()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				ch, reqs, err := c.sc.OpenChannel("auth-agent@openssh.com", nil)
				if err != nil {
					conn.Close()
					return
				}
				go ssh.DiscardRequests(reqs)
				splice(ch, conn.(*net.UnixConn))
			}()
		}
	}()
	return nil
}

// agentSocket is SSH_AUTH_SOCK for the connection's sessions ("" when the
// client asked for no agent).
func (c *nestedConn) agentSocket() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.agentLn == nil {
		return ""
	}
	return filepath.Join(c.agentDir, "agent")
}

// agentBase is where agent directories are made, as OpenSSH does: the
// temporary directory (/tmp), each one 0700 and the user's.
func agentBase() string { return os.TempDir() }

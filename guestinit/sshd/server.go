package sshd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/loftd/loftd/contract"
	"golang.org/x/crypto/ssh"
)

// User is an account nested sessions run as.
type User struct {
	Name     string
	UID, GID uint32
	Groups   []uint32 // supplementary groups
	Home     string
	Shell    string
	// Env is the environment of its sessions (PATH, HOME, USER...); the
	// client's env requests, TERM and SSH_AUTH_SOCK are added to it.
	Env []string
}

// Config is what New needs.
type Config struct {
	HostKey        ssh.Signer
	AuthorizedKeys []ssh.PublicKey
	// User is the guest user (LOFTD_USER); Root is root's account. Nested
	// connections may log in as either name, nothing else.
	User, Root User
	Spawner    Spawner // nil: DirectSpawner
	// Dir is the sessions' working directory (the workspace); the user's
	// home when empty or missing. A client's LOFTD_WORKDIR env request
	// overrides it.
	Dir string
	// Exe is the guest init binary, re-executed with SFTPArg for sftp
	// (default /proc/self/exe).
	Exe string
	// Held is the held main session (nil: none, attach is refused).
	Held *Held
	// OnStop runs for ReqStop, after the reply has been sent.
	OnStop func(contract.StopRequest)
	// Logf reports what goes wrong on a connection (nil: stderr).
	Logf func(format string, args ...any)
}

// OuterCipher is the outer connection's only cipher.
const OuterCipher = "chacha20-poly1305@openssh.com"

// Server serves the outer connection and the nested ones.
type Server struct {
	cfg    Config
	keys   map[string]bool // authorized keys' wire forms
	nested *ssh.ServerConfig
	outer  *ssh.ServerConfig

	mu       sync.Mutex
	tunnels  int
	changed  chan struct{} // closed and replaced when tunnels changes
	sessions map[string]contract.LiveSession
	nextID   int
}

// New checks cfg and returns its server.
func New(cfg Config) (*Server, error) {
	if cfg.HostKey == nil {
		return nil, errors.New("sshd: no host key")
	}
	if len(cfg.AuthorizedKeys) == 0 {
		return nil, errors.New("sshd: no authorized key: nobody could log in")
	}
	if cfg.User.Name == "" || cfg.User.Name == "root" && cfg.Root.Name == "" {
		return nil, errors.New("sshd: no guest user")
	}
	if cfg.Root.Name == "" {
		cfg.Root = User{Name: "root", Home: "/root", Shell: "/bin/sh"}
	}
	if cfg.Spawner == nil {
		cfg.Spawner = DirectSpawner{}
	}
	if cfg.Exe == "" {
		cfg.Exe = "/proc/self/exe"
	}
	if cfg.Logf == nil {
		cfg.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "guest-init: sshd: "+format+"\n", args...) }
	}
	s := &Server{cfg: cfg, keys: map[string]bool{}, changed: make(chan struct{}),
		sessions: map[string]contract.LiveSession{}}
	for _, k := range cfg.AuthorizedKeys {
		s.keys[string(k.Marshal())] = true
	}
	s.nested = &ssh.ServerConfig{PublicKeyCallback: s.auth(true)}
	s.nested.AddHostKey(cfg.HostKey)
	s.outer = &ssh.ServerConfig{PublicKeyCallback: s.auth(false)}
	// The outer connection is a local link whose only client is loftd's
	// helper, and everything on it is encrypted twice (each tunnel is a
	// whole SSH connection): its cipher is the one cheapest for a guest
	// without AES hardware (TCG: 41 MiB/s against 22 for AES-GCM).
	s.outer.Ciphers = []string{OuterCipher}
	s.outer.AddHostKey(cfg.HostKey)
	return s, nil
}

// auth accepts an authorized key; on nested connections only for the
// guest user's name or root's.
func (s *Server) auth(nested bool) func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
	return func(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if nested && md.User() != s.cfg.User.Name && md.User() != "root" {
			return nil, fmt.Errorf("user %q: only %q and root may log in", md.User(), s.cfg.User.Name)
		}
		if !s.keys[string(key.Marshal())] {
			return nil, errors.New("key not authorized")
		}
		return &ssh.Permissions{}, nil
	}
}

// user is the account a nested connection logged in as.
func (s *Server) user(conn ssh.ConnMetadata) User {
	if conn.User() == "root" {
		return s.cfg.Root
	}
	return s.cfg.User
}

// ServeOuter serves the helper's connection until it ends.
func (s *Server) ServeOuter(conn io.ReadWriteCloser) error {
	defer conn.Close()
	sc, chans, reqs, err := ssh.NewServerConn(asNetConn(conn), s.outer)
	if err != nil {
		return fmt.Errorf("outer handshake: %w", err)
	}
	defer sc.Close()
	go s.outerRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != contract.ChanTunnel {
			_ = nc.Reject(ssh.UnknownChannelType, "the outer connection carries only "+contract.ChanTunnel)
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go ssh.DiscardRequests(creqs)
		go func() {
			if err := s.ServeNested(asNetConn(ch)); err != nil {
				s.cfg.Logf("tunnel: %v", err)
			}
		}()
	}
	return nil
}

func (s *Server) outerRequests(reqs <-chan *ssh.Request) {
	for r := range reqs {
		switch r.Type {
		case contract.ReqStop:
			var stop contract.StopRequest
			if err := ssh.Unmarshal(r.Payload, &stop); err != nil {
				_ = r.Reply(false, []byte("bad payload: "+err.Error()))
				continue
			}
			_ = r.Reply(true, nil)
			if s.cfg.OnStop != nil {
				go s.cfg.OnStop(stop)
			}
		case contract.ReqSessions:
			b, err := json.Marshal(s.Sessions())
			if err != nil {
				_ = r.Reply(false, nil)
				continue
			}
			_ = r.Reply(true, b)
		default:
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
}

// ServeNested serves one nested connection until it ends. It counts in
// Tunnels while it is open.
func (s *Server) ServeNested(conn net.Conn) error {
	s.addTunnel(1)
	defer s.addTunnel(-1)
	defer conn.Close()
	sc, chans, reqs, err := ssh.NewServerConn(conn, s.nested)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	defer sc.Close()
	c := &nestedConn{s: s, sc: sc, user: s.user(sc)}
	defer c.cleanup()
	go ssh.DiscardRequests(reqs) // tcpip-forward (ssh -R) is not offered
	var wg sync.WaitGroup
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			wg.Add(1)
			go func() { defer wg.Done(); c.session(nc) }()
		case "direct-tcpip":
			wg.Add(1)
			go func() { defer wg.Done(); c.directTCPIP(nc) }()
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "unsupported channel type "+nc.ChannelType())
		}
	}
	wg.Wait()
	return nil
}

// Tunnels returns the number of open nested connections and a channel
// closed at its next change.
func (s *Server) Tunnels() (int, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tunnels, s.changed
}

func (s *Server) addTunnel(d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tunnels += d
	close(s.changed)
	s.changed = make(chan struct{})
}

// Sessions lists the live sessions, the held main session first.
func (s *Server) Sessions() []contract.LiveSession {
	s.mu.Lock()
	out := make([]contract.LiveSession, 0, len(s.sessions)+1)
	for _, ls := range s.sessions {
		out = append(out, ls)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(out[i].ID)
		b, _ := strconv.Atoi(out[j].ID)
		return a < b
	})
	if h := s.cfg.Held; h != nil {
		if ls, ok := h.session(); ok {
			out = append([]contract.LiveSession{ls}, out...)
		}
	}
	return out
}

// track registers a live session and returns its removal.
func (s *Server) track(ls contract.LiveSession) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	ls.ID = strconv.Itoa(s.nextID)
	ls.Started = time.Now().UTC()
	s.sessions[ls.ID] = ls
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.sessions, ls.ID)
	}
}

// LoadKeys reads the host key and the authorized keys from the files the
// host wrote (contract.SSHHostKeyPath, contract.SSHAuthorizedKeysPath,
// under root).
func LoadKeys(hostKeyPath, authorizedPath string) (ssh.Signer, []ssh.PublicKey, error) {
	pem, err := os.ReadFile(hostKeyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read host key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, nil, fmt.Errorf("parse host key %s: %w", hostKeyPath, err)
	}
	data, err := os.ReadFile(authorizedPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read authorized keys: %w", err)
	}
	keys, err := ParseAuthorizedKeys(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", authorizedPath, err)
	}
	return signer, keys, nil
}

// ParseAuthorizedKeys parses an authorized_keys file; blank lines and
// comments are skipped, options are ignored.
func ParseAuthorizedKeys(data []byte) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for n, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			return nil, fmt.Errorf("authorized key on line %d: %w", n+1, err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

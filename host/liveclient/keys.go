// Package liveclient is the host's client side of a running workspace VM
// (issue 19): the workspace's SSH keys, finding the VM that runs (its
// record, host/state), and the commands that talk to it through the
// helper's sockets (helper/live): exec, attach, stop, kill, sessions.
// It speaks plain SSH (x/crypto/ssh) over a tunnel to the guest init.
package liveclient

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Keys are a workspace's SSH keys, kept in its state directory: the
// guest's host key (pinned by every client) and the client key loftd
// logs in with.
type Keys struct {
	Dir          string // WORKSPACE_STATE/ssh
	HostPEM      []byte
	Host, Client ssh.Signer
	ClientPEM    []byte
	HostKeyAlias string // the name known_hosts pins the host key under
}

// The files in Keys.Dir.
const (
	hostKeyFile   = "host_key"
	clientKeyFile = "client_key"
	knownHosts    = "known_hosts"
)

// EnsureKeys reads the workspace's keys from wsDir/ssh, making any that is
// missing (ed25519, mode 0600 in a 0700 directory).
func EnsureKeys(wsDir, alias string) (*Keys, error) {
	k := &Keys{Dir: filepath.Join(wsDir, "ssh"), HostKeyAlias: alias}
	if err := os.MkdirAll(k.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("workspace ssh keys: %w", err)
	}
	var err error
	if k.HostPEM, k.Host, err = ensureKey(filepath.Join(k.Dir, hostKeyFile)); err != nil {
		return nil, err
	}
	if k.ClientPEM, k.Client, err = ensureKey(filepath.Join(k.Dir, clientKeyFile)); err != nil {
		return nil, err
	}
	return k, nil
}

func ensureKey(path string) ([]byte, ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, nil, fmt.Errorf("generate %s: %w", path, gerr)
		}
		blk, merr := ssh.MarshalPrivateKey(priv, "loftd workspace key")
		if merr != nil {
			return nil, nil, fmt.Errorf("generate %s: %w", path, merr)
		}
		data = pem.EncodeToMemory(blk)
		// O_EXCL: two loftd starting at once keep one key, the other reads it.
		f, cerr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if cerr == nil {
			_, err = f.Write(data)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = writePub(path, priv)
			}
		} else if errors.Is(cerr, os.ErrExist) {
			data, err = os.ReadFile(path)
		} else {
			err = cerr
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("workspace ssh key %s: %w", path, err)
	}
	s, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, nil, fmt.Errorf("workspace ssh key %s: %w (remove it to make a new one)", path, err)
	}
	return data, s, nil
}

func writePub(path string, priv ed25519.PrivateKey) error {
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return err
	}
	return os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(pub), 0o644)
}

// ClientKeyPath is the client private key's file (ssh-config's IdentityFile).
func (k *Keys) ClientKeyPath() string { return filepath.Join(k.Dir, clientKeyFile) }

// KnownHostsPath is the known_hosts file pinning the host key under
// HostKeyAlias (ssh-config's UserKnownHostsFile).
func (k *Keys) KnownHostsPath() string { return filepath.Join(k.Dir, knownHosts) }

// WriteKnownHosts writes KnownHostsPath: the one line pinning the host key.
func (k *Keys) WriteKnownHosts() error {
	line := k.HostKeyAlias + " " + string(ssh.MarshalAuthorizedKey(k.Host.PublicKey()))
	if err := os.WriteFile(k.KnownHostsPath(), []byte(line), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", k.KnownHostsPath(), err)
	}
	return nil
}

// HostPublicLine is the host key in authorized_keys format.
func (k *Keys) HostPublicLine() []byte { return ssh.MarshalAuthorizedKey(k.Host.PublicKey()) }

// maxPubFile bounds what is read of one of the user's *.pub files.
const maxPubFile = 64 << 10

// AuthorizedKeys is the guest's authorized_keys: the workspace's client key,
// then the user's own public keys (home/.ssh/*.pub) and the keys of the
// agent at agentSock, so that plain `ssh HOST` works with whatever key the
// user's ssh offers. Each line is parsed and written again, comments
// dropped: nothing of the user's files reaches the guest but keys.
func (k *Keys) AuthorizedKeys(home, agentSock string) []byte {
	var out bytes.Buffer
	seen := map[string]bool{}
	add := func(pk ssh.PublicKey) {
		line := ssh.MarshalAuthorizedKey(pk)
		if !seen[string(line)] {
			seen[string(line)] = true
			out.Write(line)
		}
	}
	add(k.Client.PublicKey())
	if home != "" {
		files, _ := filepath.Glob(filepath.Join(home, ".ssh", "*.pub"))
		for _, f := range files {
			for _, pk := range readPubFile(f) {
				add(pk)
			}
		}
	}
	for _, pk := range agentKeys(agentSock) {
		add(pk)
	}
	return out.Bytes()
}

func readPubFile(path string) []ssh.PublicKey {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var keys []ssh.PublicKey
	sc := bufio.NewScanner(io.LimitReader(f, maxPubFile))
	sc.Buffer(make([]byte, 16<<10), 16<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
			keys = append(keys, pk)
		}
	}
	return keys
}

func agentKeys(sock string) []ssh.PublicKey {
	if sock == "" {
		return nil
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil
	}
	defer c.Close()
	list, err := agent.NewClient(c).List()
	if err != nil {
		return nil
	}
	var keys []ssh.PublicKey
	for _, k := range list {
		if pk, err := ssh.ParsePublicKey(k.Blob); err == nil {
			keys = append(keys, pk)
		}
	}
	return keys
}

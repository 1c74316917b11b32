package live

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"
)

// DialTunnel connects to the tunnel socket of the VM whose task directory
// is dir: the connection carries SSH to the guest's server.
func DialTunnel(dir string) (net.Conn, error) {
	c, err := dialUnix(filepath.Join(dir, TunnelSocket))
	if err != nil {
		return nil, fmt.Errorf("connect to the workspace VM: %w", err)
	}
	return c, nil
}

// Ask sends req to the control socket of the VM whose task directory is dir
// and returns its reply; a reply with an error is returned as one.
func Ask(dir string, req Request) (*Reply, error) {
	c, err := dialUnix(filepath.Join(dir, ControlSocket))
	if err != nil {
		return nil, fmt.Errorf("connect to the workspace VM: %w", err)
	}
	defer c.Close()
	line, _ := json.Marshal(req)
	if _, err := c.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("%s request: %w", req.Op, err)
	}
	out, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("%s request: no answer from the VM's helper: %w", req.Op, err)
	}
	var rep Reply
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, fmt.Errorf("%s request: %w", req.Op, err)
	}
	if rep.Error != "" {
		return &rep, errors.New(rep.Error)
	}
	return &rep, nil
}

// Connect opens a nested SSH connection to the guest over a new tunnel, as
// user, authenticated with key; the guest must present host.
func Connect(dir, user string, key ssh.Signer, host ssh.PublicKey) (*ssh.Client, error) {
	c, err := DialTunnel(dir)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(host),
		Timeout:         time.Minute,
		Config:          ssh.Config{Ciphers: PreferredCiphers},
	}
	conn, chans, reqs, err := ssh.NewClientConn(c, "loftd-guest", cfg)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("ssh to the workspace VM: %w", err)
	}
	return ssh.NewClient(conn, chans, reqs), nil
}

// PreferredCiphers put chacha20-poly1305 first, as OpenSSH does: a TCG
// guest encrypts with it at about twice AES-GCM's speed, and a tunnel's
// bytes are encrypted twice (nested in the outer connection).
var PreferredCiphers = []string{"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr"}

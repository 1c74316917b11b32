package live

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// The keys the host puts in the task directory for the helper: the
// workspace's client key (OpenSSH PEM) and the pinned host public key
// (authorized_keys format). A task without them (a maintenance VM) has no
// control channel.
const (
	KeyDir        = "ssh"
	ClientKeyFile = "client_key"
	HostPubFile   = "host_key.pub"
	// VsockSocket is where the helper listens for libkrun's connections
	// to the guest's control vsock port.
	VsockSocket = "control-vsock.sock"
)

// ReadKeys reads the task's keys; ok is false when the task has none.
func ReadKeys(taskDir string) (k Keys, ok bool, err error) {
	dir := filepath.Join(taskDir, KeyDir)
	priv, err := os.ReadFile(filepath.Join(dir, ClientKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return Keys{}, false, nil
	}
	if err != nil {
		return Keys{}, false, fmt.Errorf("control channel keys: %w", err)
	}
	if k.Client, err = ssh.ParsePrivateKey(priv); err != nil {
		return Keys{}, false, fmt.Errorf("control channel client key: %w", err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, HostPubFile))
	if err != nil {
		return Keys{}, false, fmt.Errorf("control channel keys: %w", err)
	}
	if k.Host, _, _, _, err = ssh.ParseAuthorizedKey(pub); err != nil {
		return Keys{}, false, fmt.Errorf("control channel host key: %w", err)
	}
	return k, true, nil
}

// ListenVsock creates the socket libkrun connects the guest's control
// vsock port to, and starts m's outer connection on the first connection
// it gets (libkrun makes one per guest connect; the guest makes one). It
// returns the path to give libkrun.
func (m *Mux) ListenVsock(keys Keys) (string, error) {
	path := filepath.Join(m.dir, VsockSocket)
	ln, err := listenUnix(path)
	if err != nil {
		return "", err
	}
	if len(path) > maxSunPath {
		// libkrun connects in this process: give it the path through a
		// descriptor of the directory, held for the VM's life.
		fd, err := unix.Open(m.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			ln.Close()
			return "", fmt.Errorf("control vsock: %w", err)
		}
		path = "/proc/self/fd/" + strconv.Itoa(fd) + "/" + VsockSocket
	}
	go func() {
		defer ln.Close()
		c, err := ln.AcceptUnix()
		if err != nil {
			m.fail(fmt.Errorf("control vsock: %w", err))
			return
		}
		m.Start(c, keys)
	}()
	return path, nil
}

// WriteKeys gives the task directory (the host's own, 0700) the keys
// ReadKeys reads: clientPEM the workspace's client private key, hostPub
// the workspace's host public key in authorized_keys format.
func WriteKeys(taskDir string, clientPEM, hostPub []byte) error {
	dir := filepath.Join(taskDir, KeyDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control channel keys: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ClientKeyFile), clientPEM, 0o600); err != nil {
		return fmt.Errorf("control channel keys: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, HostPubFile), hostPub, 0o600); err != nil {
		return fmt.Errorf("control channel keys: %w", err)
	}
	return nil
}

package sshd

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"golang.org/x/crypto/ssh"
)

// proxyArg makes the test binary OpenSSH's ProxyCommand: it connects to
// the unix socket it is given and copies stdin and stdout to it, as
// `loftd ssh-proxy` does with the helper's socket.
const proxyArg = "proxy-for-test"

func proxyMain(sock string) int {
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		_, _ = io.Copy(c, os.Stdin)
		_ = c.(*net.UnixConn).CloseWrite()
	}()
	_, _ = io.Copy(os.Stdout, c)
	return 0
}

// TestOpenSSHClient drives the real ssh, scp and sftp clients through a
// ProxyCommand whose connections become tunnels of the outer connection.
func TestOpenSSHClient(t *testing.T) {
	sshBin := testenv.RequireCommand(t, "ssh", "openssh-client")
	f := newFixture(t, nil)
	dir := t.TempDir()
	sock := filepath.Join(dir, "mux.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tun := f.tunnel(t)
			go splice(tun.(halfCloser), c.(*net.UnixConn))
		}
	}()
	key := filepath.Join(dir, "id")
	if err := os.WriteFile(key, f.clientPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte("loftd-test "+string(ssh.MarshalAuthorizedKey(f.hostKey.PublicKey()))), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := []string{"-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + known, "-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=loftd-test",
		"-o", "ProxyCommand=" + mustExe(t) + " " + proxyArg + " " + sock, "-o", "User=dev"}

	cmd := exec.Command(sshBin, append(opts, "loftd-test", "echo hello from $USER; exit 3")...)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || string(out) != "hello from dev\n" {
		t.Errorf("ssh: %v, stdout %q; want status 3, %q", err, out, "hello from dev\n")
	}

	cmd = exec.Command(sshBin, append(opts, "-tt", "loftd-test", "stty size; tty >/dev/null && echo tty")...)
	out, err = cmd.Output()
	if err != nil || !strings.Contains(string(out), "tty\r\n") {
		t.Errorf("ssh -tt: %v, stdout %q", err, out)
	}

	scp := testenv.RequireCommand(t, "scp", "openssh-client")
	local := filepath.Join(dir, "local")
	if err := os.WriteFile(local, []byte("scp payload\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// scp speaks sftp with OpenSSH 9 (-s forces it on older ones).
	remote := "loftd-test:" + filepath.Join(f.user.Home, "copied")
	if out, err := exec.Command(scp, append(append([]string{"-s"}, opts...), local, remote)...).CombinedOutput(); err != nil {
		t.Fatalf("scp put: %v\n%s", err, out)
	}
	back := filepath.Join(dir, "back")
	if out, err := exec.Command(scp, append(append([]string{"-s"}, opts...), remote, back)...).CombinedOutput(); err != nil {
		t.Fatalf("scp get: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(back); err != nil || string(got) != "scp payload\n" {
		t.Errorf("scp round trip: %q, %v", got, err)
	}
}

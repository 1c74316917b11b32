package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
)

// sshWorld is a world with its ssh-config block in a file, for Debian's
// OpenSSH client (ssh -F: ssh reads ~/.ssh/config from the passwd home,
// not $HOME).
type sshWorld struct {
	*world
	config, host string
}

func newSSHWorld(t *testing.T) *sshWorld {
	w := newWorld(t)
	testenv.RequireCommand(t, "ssh", "openssh-client")
	start := w.cmd().Args[1:] // the world's session flags, for the VM ssh-proxy starts
	status, out, errs := w.liveSub("", "ssh-config", append([]string{w.workspace, "--"}, start...)...)
	if status != 0 {
		t.Fatalf("loftd ssh-config: %d\n%s", status, errs)
	}
	host := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "Host ")
	// The ProxyCommand is the loftd that printed it; its environment
	// (the world's state) comes from ssh's.
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(cfg, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.liveSub("", "kill", w.workspace) })
	return &sshWorld{world: w, config: cfg, host: host}
}

// ssh runs an OpenSSH tool (ssh, scp, sftp) with the block's config.
func (s *sshWorld) ssh(t *testing.T, stdin io.Reader, tool string, args ...string) (int, string, string) {
	t.Helper()
	c := exec.Command(tool, append([]string{"-F", s.config, "-o", "BatchMode=yes"}, args...)...)
	c.Env = s.cmd().Env
	var out, errb bytes.Buffer
	c.Stdin, c.Stdout, c.Stderr = stdin, &out, &errb
	err := c.Run()
	if err != nil && c.ProcessState == nil {
		t.Fatalf("%s %q: %v", tool, args, err)
	}
	return c.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestSSHOpenSSH: Debian's OpenSSH client through ssh-config's block. The
// first ssh starts the stopped workspace VM through ProxyCommand; then
// commands and their statuses, scp and sftp (1 MiB, exact), ssh -L to a
// guest port. The host key is pinned: no prompt (BatchMode), and no
// known_hosts of the user's is touched.
func TestSSHOpenSSH(t *testing.T) {
	s := newSSHWorld(t)
	if ps := s.ps(t); len(ps) != 0 {
		t.Fatalf("a VM runs before the first ssh: %+v", ps)
	}
	status, out, errs := s.ssh(t, nil, "ssh", s.host, "echo", "hello from", "$(id -un)")
	if status != 0 || out != "hello from dev\n" {
		t.Fatalf("ssh HOST echo (starting the VM) = %d, %q; stderr:\n%s", status, out, errs)
	}
	if ps := s.ps(t); len(ps) != 1 || !ps[0].Detached {
		t.Errorf("after the first ssh, loftd ps = %+v, want one detached VM", ps)
	}
	if status, _, _ := s.ssh(t, nil, "ssh", s.host, "exit 3"); status != 3 {
		t.Errorf("ssh HOST 'exit 3' = %d, want 3", status)
	}
	if status, out, _ := s.ssh(t, strings.NewReader("piped"), "ssh", s.host, "cat"); status != 0 || out != "piped" {
		t.Errorf("ssh HOST cat with stdin = %d, %q", status, out)
	}

	data := make([]byte, 1<<20)
	rand.Read(data)
	local := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if status, _, errs := s.ssh(t, nil, "scp", local, s.host+":/tmp/blob"); status != 0 {
		t.Fatalf("scp to the guest: %d\n%s", status, errs)
	}
	back := filepath.Join(t.TempDir(), "back")
	batch := filepath.Join(t.TempDir(), "batch")
	os.WriteFile(batch, []byte("get /tmp/blob "+back+"\nput "+local+" /tmp/blob2\n"), 0o644)
	if status, _, errs := s.ssh(t, nil, "sftp", "-b", batch, s.host); status != 0 {
		t.Fatalf("sftp get/put: %d\n%s", status, errs)
	}
	if got, _ := os.ReadFile(back); !bytes.Equal(got, data) {
		t.Errorf("scp then sftp get: %d bytes back, not the 1 MiB sent", len(got))
	}
	if status, out, _ := s.ssh(t, nil, "ssh", s.host, "sha256sum < /tmp/blob2"); status != 0 || !strings.HasPrefix(out, sum(data)) {
		t.Errorf("sftp put: guest sha256 %q, want %s", out, sum(data))
	}

	// ssh -L to a guest port: busybox httpd in the guest.
	port := freePort(t, "tcp")
	fwd := exec.Command("ssh", "-F", s.config, "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:8088", port), s.host,
		"mkdir -p /tmp/www && echo served-by-guest > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8088 -h /tmp/www")
	fwd.Env = s.cmd().Env
	var ferr bytes.Buffer
	fwd.Stderr = &ferr
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { fwd.Process.Kill(); fwd.Wait() }()
	var body string
	for i := 0; i < 300 && body == ""; i++ {
		body = httpGet(port)
		if body == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if body != "served-by-guest\n" {
		t.Errorf("ssh -L to guest port 8088: got %q; ssh stderr:\n%s", body, ferr.String())
	}
	fwd.Process.Kill()
	fwd.Wait()

	// A stopped workspace: ssh starts it again.
	if status, _, errs := s.liveSub("", "stop", "--time", "1", s.workspace); status != 0 {
		t.Fatalf("loftd stop: %d\n%s", status, errs)
	}
	if ps := s.ps(t); len(ps) != 0 {
		t.Fatalf("after stop: %+v", ps)
	}
	if status, out, errs := s.ssh(t, nil, "ssh", s.host, "cat /tmp/blob2 >/dev/null 2>&1 || echo fresh"); status != 0 || out != "fresh\n" {
		t.Errorf("ssh to the stopped workspace = %d, %q; want a fresh VM; stderr:\n%s", status, out, errs)
	}
}

// TestSSHAgentAndTTY: ssh -A forwards the host agent (Debian's ssh-add,
// run in the guest from the workspace, lists its key), and ssh -t is an
// interactive shell in tmux.
func TestSSHAgentAndTTY(t *testing.T) {
	s := newSSHWorld(t)
	testenv.RequireCommand(t, "ssh-agent", "openssh-client")
	testenv.RequireCommand(t, "tmux", "tmux")
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { agent.Process.Kill(); agent.Wait() }()
	key := filepath.Join(dir, "id_test")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "agent-test-key", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	// Debian's ssh-add with its libraries, run in the guest by its loader.
	tools := filepath.Join(s.workspace, "sshtools")
	copyWithLibs(t, "/usr/bin/ssh-add", tools)
	os.Setenv("SSH_AUTH_SOCK", sock)
	defer os.Unsetenv("SSH_AUTH_SOCK")
	status, out, errs := s.ssh(t, nil, "ssh", "-A", s.host,
		"/workspace/sshtools/ld-linux-x86-64.so.2 --library-path /workspace/sshtools /workspace/sshtools/ssh-add -l")
	if status != 0 || !strings.Contains(out, "agent-test-key") {
		t.Errorf("ssh -A HOST ssh-add -l = %d, %q; want the host agent's key; stderr:\n%s", status, out, errs)
	}

	// ssh -t: an interactive shell on a pty.
	args := append([]string{"ssh", "-F", s.config, "-t", s.host}, []string{}...)
	pane := newTmuxPane(t, 80, 24, s.paneScript(t, args))
	pane.line("echo TTY $(tty | cut -c1-8) SZ $(stty size) END")
	pane.waitText("TTY /dev/pts", time.Minute)
	if got := lastSize(pane.screen()); got != "24 80" {
		t.Errorf("ssh -t: stty size %q, want \"24 80\"", got)
	}
	pane.line("exit 6")
	pane.waitText("END 6", time.Minute)
}

func copyWithLibs(t *testing.T, bin, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	files := []string{bin}
	for _, l := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func httpGet(port int) string {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, _ := io.ReadAll(c)
	_, body, ok := strings.Cut(string(resp), "\r\n\r\n")
	if !ok {
		return ""
	}
	return body
}

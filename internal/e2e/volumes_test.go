package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var agentbox struct {
	once sync.Once
	path string
	err  error
}

// agentboxBin builds cmd/agentbox (loftd with the agentbox profile) next
// to the loftd and guest init TestMain built.
func agentboxBin(t testing.TB) string {
	t.Helper()
	agentbox.once.Do(func() {
		agentbox.path = filepath.Join(bins.dir, "agentbox")
		cmd := exec.Command("go", "build", "-tags", "containers_image_openpgp", "-o", agentbox.path, "../../cmd/agentbox")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentbox.err = err
			agentbox.path = string(out)
		}
	})
	if agentbox.err != nil {
		t.Fatalf("go build cmd/agentbox: %v\n%s", agentbox.err, agentbox.path)
	}
	return agentbox.path
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// TestToolStateMounts: agentbox shares the host's ~/.config/gh (a
// directory, over virtiofs, read-only under a guest overlay) and copies ~/.gitconfig (a file) at the same
// paths under the guest user's home; ~/.codex, absent on the host, is
// skipped. The home is the guest user's, as a real user's home is theirs
// (as root, SUDO_UID names that user): the workload reads and writes it as
// that user.
func TestToolStateMounts(t *testing.T) {
	w := newWorld(t)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".config", "gh", "hosts.yml"), "github.com:\n  user: octo\n", 0o600)
	writeFile(t, filepath.Join(home, ".gitconfig"), "[user]\n\tname = Octo\n", 0o644)
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", guestUID, guestUID), home).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v %s", home, err, out)
	}
	c := w.cmd("--", "sh", "-c", "cat /home/dev/.config/gh/hosts.yml /home/dev/.gitconfig; echo more > /home/dev/.config/gh/guest.txt; test -e /home/dev/.codex || echo no-codex")
	c.Path, c.Args[0] = agentboxBin(t), "agentbox"
	c.Env = append(c.Env, "HOME="+home)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	want := "github.com:\n  user: octo\n[user]\n\tname = Octo\nno-codex\n"
	if err != nil || out.String() != want {
		t.Fatalf("agentbox with ~/.config/gh and ~/.gitconfig: %v, stdout %q, want %q\nstderr:\n%s", err, out.String(), want, errb.String())
	}
	// The guest may write its tool state, into an overlay of its own
	// (issue 17, item 6): the write does not reach the host.
	if _, err := os.Lstat(filepath.Join(home, ".config", "gh", "guest.txt")); err == nil {
		t.Errorf("the file the guest wrote in ~/.config/gh reached the host")
	}
}

// TestVolume: -v SRC:DST shares a directory both ways, -v SRC:DST:ro
// refuses the guest's writes. The file the guest writes is owned on the
// host by the uid it wrote as: the guest user's (as root, --uid or
// SUDO_UID; rootless, the keep-id map gives it to the host user).
func TestVolume(t *testing.T) {
	w := newWorld(t)
	rw, ro := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(ro, "keep"), "kept\n", 0o644)
	// Both are the guest user's: only :ro may refuse a write.
	for _, d := range []string{rw, ro} {
		if err := os.Chown(d, guestUID, guestUID); err != nil {
			t.Fatal(err)
		}
	}
	script := "echo hi > /data/from-guest; id -u; cat /ro/keep; if echo x > /ro/new; then echo ro-writable; fi; if rm /ro/keep; then echo ro-removable; fi"
	status, stdout, stderr := w.run("", "-v", rw+":/data", "-v", ro+":/ro:ro", "--", "sh", "-c", script)
	want := fmt.Sprintf("%d\nkept\n", guestUID)
	if status != 0 || stdout != want {
		t.Fatalf("loftd -v: status %d, stdout %q, want 0 and %q\nstderr:\n%s", status, stdout, want, stderr)
	}
	if !strings.Contains(stderr, "Read-only file system") {
		t.Errorf("writes to the :ro volume: stderr %q, want EROFS", stderr)
	}
	fi, err := os.Stat(filepath.Join(rw, "from-guest"))
	if err != nil {
		t.Fatalf("file the guest wrote in the -v directory: %v", err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != guestUID {
		t.Errorf("host owner of the file the guest user wrote: uid %d, want %d", uid, guestUID)
	}
	if _, err := os.Stat(filepath.Join(ro, "new")); err == nil {
		t.Errorf("the guest created a file in the :ro volume")
	}
	if _, err := os.Stat(filepath.Join(ro, "keep")); err != nil {
		t.Errorf("the guest removed a file from the :ro volume: %v", err)
	}
}

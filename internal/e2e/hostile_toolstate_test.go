package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The hostile guest and what loftd shares with it for tools and volumes
// (issue 17, items 5 and 6): links the guest plants are never followed by
// the host, and the tool state the guest writes never reaches the host's
// files unless the user opts in.

// secretFile is a root-only host file (0600 root:root) the guest user
// must never read, like /etc/shadow, with content the test can look for.
func secretFile(t *testing.T) (path, content string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "shadow")
	content = "root:$6$hostile-test-secret$:19000:0:99999:7:::\n"
	writeFile(t, path, content, 0o600)
	return path, content
}

// agentboxCmd is the world's loftd run as agentbox with HOME=home.
func (w *world) agentboxCmd(home string, args ...string) *exec.Cmd {
	c := w.cmd(args...)
	c.Path, c.Args[0] = agentboxBin(w.t), "agentbox"
	c.Env = append(c.Env, "HOME="+home)
	return c
}

// runCmd runs c to the end: its status, stdout and stderr.
func runCmd(t *testing.T, c *exec.Cmd) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil && c.ProcessState == nil {
		t.Fatalf("%s: %v", c.Args, err)
	}
	return c.ProcessState.ExitCode(), out.String(), errb.String()
}

// userHome is a home for the guest user's host identity (uid 1000, as
// SUDO_UID says) with files rel -> content.
func userHome(t *testing.T, files map[string]string) string {
	t.Helper()
	home := t.TempDir()
	for rel, content := range files {
		writeFile(t, filepath.Join(home, rel), content, 0o644)
	}
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", guestUID, guestUID), home).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v %s", home, err, out)
	}
	return home
}

// TestHostileWorkspaceLinkVolume: the guest replaces /workspace/cfg.txt by
// a link to a root-only host file; the next `loftd -v ./cfg.txt:…` must
// not copy that file in: a link inside the workspace is the guest's, and
// the run is refused before boot (usage error, exit 2).
func TestHostileWorkspaceLinkVolume(t *testing.T) {
	w := newWorld(t)
	secret, content := secretFile(t)
	writeFile(t, filepath.Join(w.workspace, "cfg.txt"), "cfg\n", 0o644)
	status, _, stderr := w.run("", "--", "sh", "-c", "rm /workspace/cfg.txt && ln -s "+secret+" /workspace/cfg.txt")
	if status != 0 {
		t.Fatalf("planting the link: status %d\n%s", status, stderr)
	}
	if target, err := os.Readlink(filepath.Join(w.workspace, "cfg.txt")); err != nil || target != secret {
		t.Fatalf("the guest's link on the host: %q, %v", target, err)
	}
	c := w.cmd("-v", "./cfg.txt:/mnt/cfg.txt:ro", "--", "cat", "/mnt/cfg.txt")
	c.Dir = w.workspace
	status, stdout, stderr := runCmd(t, c)
	if strings.Contains(stdout, content) {
		t.Fatalf("the guest read the host's root-only file through its own link:\n%s", stdout)
	}
	if status != 2 || !strings.Contains(stderr, "cfg.txt is a symbolic link inside "+w.workspace) {
		t.Errorf("-v of a link the guest planted: status %d, stderr %q; want 2 and the link named", status, stderr)
	}
}

// TestHostileWorkspaceLinkVolumeRootless: the same refusal rootless, where
// the link would hand the guest a file of the user's outside the
// workspace (their ssh key). The link is planted as the guest would leave
// it: the user's, in the workspace.
func TestHostileWorkspaceLinkVolumeRootless(t *testing.T) {
	w := newRootlessWorld(t)
	key := filepath.Join(w.home, "id_ed25519")
	writeFile(t, key, "PRIVATE KEY\n", 0o600)
	link := filepath.Join(w.ws, "cfg.txt")
	if err := os.Symlink(key, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{key, link} {
		if err := os.Lchown(p, w.uid, w.gid); err != nil {
			t.Fatal(err)
		}
	}
	status, stdout, stderr := runCmd(t, w.cmd("-v", "./cfg.txt:/mnt/cfg.txt:ro", "--", "cat", "/mnt/cfg.txt"))
	if strings.Contains(stdout, "PRIVATE KEY") || status != 2 || !strings.Contains(stderr, "is a symbolic link inside") {
		t.Errorf("rootless -v of a link in the workspace: status %d, stdout %q, stderr %q; want 2 and the link named", status, stdout, stderr)
	}
}

// TestHostileGitconfigLinkAsRoot: as root for uid 1000, agentbox copies
// ~/.gitconfig into the guest. When it links to a file only root may read,
// the copy would hand that file to the guest user: refused, naming it.
func TestHostileGitconfigLinkAsRoot(t *testing.T) {
	w := newWorld(t)
	secret, content := secretFile(t)
	home := userHome(t, nil)
	if err := os.Symlink(secret, filepath.Join(home, ".gitconfig")); err != nil {
		t.Fatal(err)
	}
	status, stdout, stderr := runCmd(t, w.agentboxCmd(home, "--", "cat", "/home/dev/.gitconfig"))
	if strings.Contains(stdout, content) {
		t.Fatalf("the guest read the host's root-only file through ~/.gitconfig:\n%s", stdout)
	}
	if status == 0 || !strings.Contains(stderr, "not readable by the guest user's host identity") {
		t.Errorf("~/.gitconfig -> a root-only file: status %d, stderr %q; want a refusal naming it", status, stderr)
	}
}

// TestToolStateOverlay: by default the guest writes its tool state
// (~/.claude/settings.json, where hooks live) into an overlay: the host's
// file stays byte-identical, no new file appears on the host, and the
// guest's version is there again in the next run of the same workspace.
func TestToolStateOverlay(t *testing.T) {
	w := newWorld(t)
	orig := `{"model":"opus"}` + "\n"
	home := userHome(t, map[string]string{".claude/settings.json": orig})
	hook := `{"hooks":{"SessionStart":[{"command":"touch /tmp/pwned"}]}}`
	status, stdout, stderr := runCmd(t, w.agentboxCmd(home, "--", "sh", "-c",
		"echo '"+hook+"' > /home/dev/.claude/settings.json && echo guest > /home/dev/.claude/new && cat /home/dev/.claude/settings.json"))
	if status != 0 || stdout != hook+"\n" {
		t.Fatalf("guest writing ~/.claude: status %d, stdout %q\nstderr:\n%s", status, stdout, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(home, ".claude", "settings.json")); err != nil || string(b) != orig {
		t.Errorf("host ~/.claude/settings.json after the guest wrote it: %q, %v; want it byte-identical", b, err)
	}
	if _, err := os.Lstat(filepath.Join(home, ".claude", "new")); err == nil {
		t.Errorf("the guest's new file reached the host's ~/.claude")
	}
	status, stdout, stderr = runCmd(t, w.agentboxCmd(home, "--", "cat", "/home/dev/.claude/settings.json", "/home/dev/.claude/new"))
	if status != 0 || stdout != hook+"\nguest\n" {
		t.Errorf("next run of the workspace: status %d, stdout %q; want the guest's own tool state back\nstderr:\n%s", status, stdout, stderr)
	}
}

// TestToolStateLive: --live-mounts opts into the read-write share: the
// guest's write reaches the host's file.
func TestToolStateLive(t *testing.T) {
	w := newWorld(t)
	home := userHome(t, map[string]string{".claude/settings.json": "{}\n"})
	status, _, stderr := runCmd(t, w.agentboxCmd(home, "--live-mounts", "--", "sh", "-c", "echo live > /home/dev/.claude/settings.json"))
	if status != 0 {
		t.Fatalf("agentbox --live-mounts: status %d\n%s", status, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(home, ".claude", "settings.json")); err != nil || string(b) != "live\n" {
		t.Errorf("host ~/.claude/settings.json after a live write: %q, %v; want the guest's", b, err)
	}
}

// TestToolStateSymlinkedDir: the user's ~/.claude is a link to their
// dotfiles: loftd resolves it before boot and the guest sees the files.
func TestToolStateSymlinkedDir(t *testing.T) {
	w := newWorld(t)
	home := userHome(t, map[string]string{"dotfiles/claude/CLAUDE.md": "dotfiles\n"})
	if err := os.Symlink("dotfiles/claude", filepath.Join(home, ".claude")); err != nil {
		t.Fatal(err)
	}
	status, stdout, stderr := runCmd(t, w.agentboxCmd(home, "--", "cat", "/home/dev/.claude/CLAUDE.md"))
	if status != 0 || stdout != "dotfiles\n" {
		t.Errorf("agentbox with ~/.claude -> dotfiles/claude: status %d, stdout %q\nstderr:\n%s", status, stdout, stderr)
	}
}

// TestToolStateOverlayRootless: the same overlay rootless, through the
// keep-id namespace: the host's ~/.claude stays byte-identical and the
// guest's change is back in the next run. ~/.gitconfig, a link to the
// user's dotfiles, is still copied in.
func TestToolStateOverlayRootless(t *testing.T) {
	w := newRootlessWorld(t)
	copyExec(t, agentboxBin(t), filepath.Join(w.bin, "agentbox"))
	orig := "{}\n"
	settings := filepath.Join(w.home, ".claude", "settings.json")
	writeFile(t, settings, orig, 0o600)
	gitconfig := filepath.Join(w.home, "dotfiles", "gitconfig")
	writeFile(t, gitconfig, "[user]\n\tname = Octo\n", 0o600)
	if err := os.Symlink("dotfiles/gitconfig", filepath.Join(w.home, ".gitconfig")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Dir(settings), settings, filepath.Dir(gitconfig), gitconfig, filepath.Join(w.home, ".gitconfig")} {
		if err := os.Lchown(p, w.uid, w.gid); err != nil {
			t.Fatal(err)
		}
	}
	agentbox := func(script string) (int, string, string) {
		c := w.cmd("--", "sh", "-c", script)
		c.Path, c.Args[0] = filepath.Join(w.bin, "agentbox"), "agentbox"
		return runCmd(t, c)
	}
	if status, _, stderr := agentbox("echo hooked > /home/dev/.claude/settings.json"); status != 0 {
		t.Fatalf("rootless guest writing ~/.claude: status %d\n%s", status, stderr)
	}
	if b, err := os.ReadFile(settings); err != nil || string(b) != orig {
		t.Errorf("host ~/.claude/settings.json after the rootless guest wrote it: %q, %v; want it byte-identical", b, err)
	}
	if status, stdout, stderr := agentbox("cat /home/dev/.claude/settings.json /home/dev/.gitconfig"); status != 0 || stdout != "hooked\n[user]\n\tname = Octo\n" {
		t.Errorf("next rootless run: status %d, stdout %q; want the guest's own tool state back\nstderr:\n%s", status, stdout, stderr)
	}
}

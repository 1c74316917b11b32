package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
)

// tmuxPane is one pane of a private tmux server: the test types into it
// and reads its screen, as a person at a terminal would.
type tmuxPane struct {
	t    *testing.T
	bin  string
	sock string
	// ended, when set, says the program under test has ended: waiting
	// for more on the screen is then pointless.
	ended func() bool
}

// newTmuxPane starts a detached cols×rows session running command.
func newTmuxPane(t *testing.T, cols, rows int, command string) *tmuxPane {
	t.Helper()
	m := &tmuxPane{t: t, bin: testenv.RequireCommand(t, "tmux", "tmux"), sock: filepath.Join(t.TempDir(), "tmux.sock")}
	m.tmux("-f", "/dev/null", "new-session", "-d", "-s", "tty", "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows), command)
	t.Cleanup(func() { _ = exec.Command(m.bin, "-S", m.sock, "kill-server").Run() })
	return m
}

func (m *tmuxPane) tmux(args ...string) string {
	m.t.Helper()
	out, err := exec.Command(m.bin, append([]string{"-S", m.sock}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// line types text and Enter.
func (m *tmuxPane) line(text string) {
	m.t.Helper()
	m.tmux("send-keys", "-t", "tty", "-l", text)
	m.tmux("send-keys", "-t", "tty", "Enter")
}

func (m *tmuxPane) screen() string {
	m.t.Helper()
	return m.tmux("capture-pane", "-t", "tty", "-p")
}

// waitScreen polls the pane until ok accepts its screen, failing after d.
func (m *tmuxPane) waitScreen(what string, d time.Duration, ok func(string) bool) string {
	m.t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := m.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) || (m.ended != nil && m.ended()) {
			m.t.Fatalf("the pane does not show %s (waited at most %s):\n%s", what, d, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *tmuxPane) waitText(text string, d time.Duration) string {
	m.t.Helper()
	return m.waitScreen(strings.TrimSpace(text), d, func(s string) bool { return strings.Contains(s, text) })
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var sizeRe = regexp.MustCompile(`SZ (\d+ \d+) END`)

// lastSize is the last "SZ ROWS COLS END" on the screen ("" if none).
func lastSize(screen string) string {
	all := sizeRe.FindAllStringSubmatch(screen, -1)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1][1]
}

// TestTTYInteractiveShell runs `loftd -- /bin/sh` in a tmux pane: a shell
// on a real terminal in the guest (prompt, echo, window size that follows
// the pane, ^C to the foreground job, full-screen programs), its exit
// status as loftd's, and the pane's terminal settings intact afterwards.
func TestTTYInteractiveShell(t *testing.T) {
	w := newWorld(t)
	testenv.RequireCommand(t, "tmux", "tmux")
	dir := t.TempDir()
	c := w.cmd("--", "/bin/sh")
	quoted := make([]string, len(c.Args))
	for i, a := range c.Args {
		quoted[i] = shQuote(a)
	}
	// An outer sh in the pane records the terminal's settings around loftd
	// and loftd's status, as a person would check them.
	script := strings.Join([]string{
		"export XDG_STATE_HOME=" + shQuote(w.state) + " XDG_CONFIG_HOME=" + shQuote(filepath.Join(w.state, "config")),
		"stty -a > " + shQuote(filepath.Join(dir, "before")),
		strings.Join(quoted, " ") + " 2>" + shQuote(filepath.Join(dir, "stderr")),
		"st=$?",
		"stty -a > " + shQuote(filepath.Join(dir, "after")),
		"echo $st > " + shQuote(filepath.Join(dir, "status")),
		"exec sleep 600", // keeps the pane (and its screen) until cleanup
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	pane := newTmuxPane(t, 100, 30, "sh "+shQuote(filepath.Join(dir, "run.sh")))
	statusFile := filepath.Join(dir, "status")
	pane.ended = func() bool { _, err := os.Stat(statusFile); return err == nil }
	t.Cleanup(func() {
		if t.Failed() {
			data, _ := os.ReadFile(filepath.Join(dir, "stderr"))
			t.Logf("loftd stderr:\n%s", data)
		}
	})

	// A prompt, and the guest's line discipline echoes what is typed.
	pane.line("echo READY $((40+2))")
	pane.waitText("READY 42", 3*time.Minute)
	pane.waitText("echo READY $((40+2))", 5*time.Second)

	pane.line("echo SZ $(stty size) END")
	s := pane.waitScreen("a size from stty size", 30*time.Second, func(s string) bool { return lastSize(s) != "" })
	if got := lastSize(s); got != "30 100" {
		t.Errorf("stty size in the guest = %q, want the pane's \"30 100\"", got)
	}

	pane.tmux("resize-window", "-t", "tty", "-x", "120", "-y", "40")
	deadline := time.Now().Add(30 * time.Second)
	for {
		pane.line("clear; echo SZ $(stty size) END")
		s := pane.waitScreen("a size from stty size", 30*time.Second, func(s string) bool { return lastSize(s) != "" })
		if lastSize(s) == "40 120" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after resizing the pane to 40x120, stty size in the guest = %q:\n%s", lastSize(s), s)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// ^C reaches the guest's foreground job, not loftd or the VM.
	pane.line("clear; echo SLEEPING $((3*3)); sleep 100")
	pane.waitText("SLEEPING 9", 30*time.Second)
	pane.tmux("send-keys", "-t", "tty", "C-c")
	pane.line("echo AFTER $?")
	pane.waitText("AFTER 130", 60*time.Second)

	// less pages a long file: the first screen, not the end; q quits.
	pane.line("clear; seq 1 500 > /tmp/long; less /tmp/long")
	s = pane.waitScreen("less's first page", 30*time.Second, func(s string) bool {
		return regexp.MustCompile(`(?m)^1\n2\n3\n`).MatchString(s) && regexp.MustCompile(`(?m)^30$`).MatchString(s)
	})
	if regexp.MustCompile(`(?m)^(100|500)$`).MatchString(s) {
		t.Errorf("less shows more than its first page:\n%s", s)
	}
	pane.tmux("send-keys", "-t", "tty", "q")
	pane.line("clear; echo LESSQ $((2+3))")
	pane.waitText("LESSQ 5", 30*time.Second)

	// vi opens (its empty-line markers fill the screen) and quits.
	pane.line("clear; vi /tmp/new.txt")
	pane.waitScreen("vi's screen", 30*time.Second, func(s string) bool {
		return len(regexp.MustCompile(`(?m)^~\s*$`).FindAllString(s, -1)) >= 20
	})
	// vi starts in command mode; an Escape just before ":" would read as
	// an Alt-: key sequence.
	pane.line(":q!")
	pane.line("clear; echo VIQ $((3+4))")
	pane.waitText("VIQ 7", 30*time.Second)

	pane.line("exit 3")
	pane.ended = nil
	pane.waitScreen("loftd's end", 60*time.Second, func(string) bool {
		_, err := os.Stat(statusFile)
		return err == nil
	})
	data, _ := os.ReadFile(statusFile)
	if got := strings.TrimSpace(string(data)); got != "3" {
		t.Errorf("loftd after `exit 3` in the guest shell: status %s, want 3", got)
	}
	// The pane was resized in between: compare everything but the size.
	size := regexp.MustCompile(`rows \d+; columns \d+;`)
	before, _ := os.ReadFile(filepath.Join(dir, "before"))
	after, _ := os.ReadFile(filepath.Join(dir, "after"))
	before, after = size.ReplaceAll(before, nil), size.ReplaceAll(after, nil)
	if len(before) == 0 || string(before) != string(after) {
		t.Errorf("the pane's terminal is not restored:\nbefore: %s\nafter:  %s", before, after)
	}
	if left := w.waitNoLeftovers(); len(left) > 0 {
		t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
	}
}

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
)

// paneScript writes a script that runs cmd with the world's state in a
// tmux pane, then prints "END <status>" and leaves a shell there to type
// the next command into.
func (w *world) paneScript(t *testing.T, cmd []string) string {
	t.Helper()
	quoted := make([]string, len(cmd))
	for i, a := range cmd {
		quoted[i] = shQuote(a)
	}
	env := "export XDG_STATE_HOME=" + shQuote(w.state) + " XDG_CONFIG_HOME=" + shQuote(filepath.Join(w.state, "config")) +
		" SUDO_UID=1000 SUDO_GID=1000 PS1='host$ '"
	script := env + "\n" + strings.Join(quoted, " ") + "\necho END $?\nexec sh\n"
	p := filepath.Join(t.TempDir(), "run.sh")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return "sh " + shQuote(p)
}

// TestLiveTmux: `agentbox` (as `loftd` with no command) in a terminal starts the workspace
// VM with its login shell held and attaches to it. While that session is
// open, `loftd exec` runs beside it (output, exit status), and `exec -t`
// gets a pty that follows its pane's size and passes ^C to its foreground
// job. ctrl-p,ctrl-q detaches and leaves the VM running; `loftd attach`
// comes back to the same shell with its screen replayed; stop ends it all.
func TestLiveTmux(t *testing.T) {
	w := newWorld(t)
	testenv.RequireCommand(t, "tmux", "tmux")
	t.Cleanup(func() { w.liveSub("", "kill", w.workspace) })
	// agentbox: the same start-or-join as loftd with no command.
	main := newTmuxPane(t, 100, 30, w.paneScript(t, append([]string{agentboxBin(t)}, w.cmd().Args[1:]...)))
	main.line("echo READY $((40+2))")
	main.waitText("READY 42", 3*time.Minute)

	// exec beside the attached session.
	status, out, errs := w.liveSub("", "exec", "--workspace", w.workspace, "--", "sh", "-c", "echo beside; exit 5")
	if status != 5 || out != "beside\n" {
		t.Errorf("loftd exec while attached = %d, %q; want 5, \"beside\\n\"; stderr:\n%s", status, out, errs)
	}

	// exec -t in a second pane: window size and ^C.
	execPane := newTmuxPane(t, 90, 20, w.paneScript(t, w.subCmd("exec", "--workspace", w.workspace, "-t", "--", "sh").Args))
	execPane.line("echo SZ $(stty size) END")
	s := execPane.waitScreen("a size", time.Minute, func(s string) bool { return lastSize(s) != "" })
	if got := lastSize(s); got != "20 90" {
		t.Errorf("stty size under exec -t = %q, want the pane's \"20 90\"", got)
	}
	execPane.tmux("resize-window", "-t", "tty", "-x", "110", "-y", "35")
	execPane.waitScreen("the new size", time.Minute, func(s string) bool {
		execPane.line("echo SZ $(stty size) END")
		time.Sleep(300 * time.Millisecond)
		return lastSize(execPane.screen()) == "35 110"
	})
	execPane.line("sleep 100; echo SLEPT")
	time.Sleep(time.Second)
	execPane.tmux("send-keys", "-t", "tty", "C-c")
	execPane.line("echo INTR $?")
	execPane.waitText("INTR 130", time.Minute)
	execPane.line("exit 4")
	execPane.waitText("END 4", time.Minute)

	// Detach, then reattach: the screen comes back.
	main.line("echo MARK-$((6*7))")
	main.waitText("MARK-42", time.Minute)
	main.tmux("send-keys", "-t", "tty", "C-p", "C-q")
	main.waitText("END 0", time.Minute)
	ps := w.ps(t)
	if len(ps) != 1 || !ps[0].Live {
		t.Fatalf("after detach, loftd ps = %+v, want the VM still running", ps)
	}
	main.line("clear")
	main.waitScreen("a cleared screen", time.Minute, func(s string) bool { return !strings.Contains(s, "MARK-42") })
	main.line(strings.Join(quoteAll(w.subCmd("attach", w.workspace).Args), " "))
	main.waitText("MARK-42", time.Minute)
	main.line("echo BACK $((1+1))")
	main.waitText("BACK 2", time.Minute)
	w.checkStop(t, "kill", ps[0].PID)
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shQuote(a)
	}
	return out
}

// TestAgentboxExitEndsVM: when the held login shell of `agentbox` exits,
// agentbox returns only once the workspace's VM is down, so the next loftd
// in that workspace (a script's next line) boots a VM of its own instead
// of joining the one that is shutting down: it used to find it still
// answering and fail "ssh: handshake failed: EOF" (status 125).
func TestAgentboxExitEndsVM(t *testing.T) {
	w := newWorld(t)
	testenv.RequireCommand(t, "tmux", "tmux")
	t.Cleanup(func() { w.liveSub("", "kill", w.workspace) })
	agentbox := append([]string{agentboxBin(t)}, w.cmd().Args[1:]...)
	next := append(w.cmd().Args, "--", "sh", "-c", "echo FRESH $((40+2))")
	quote := func(args []string) string {
		q := make([]string, len(args))
		for i, a := range args {
			q[i] = shQuote(a)
		}
		return strings.Join(q, " ")
	}
	// The next loftd runs right after agentbox, from the same script.
	pane := newTmuxPane(t, 100, 30, w.paneScript(t, []string{"sh", "-c",
		quote(agentbox) + `; echo "AGENTBOX $?"; ` + quote(next) + ` 2>&1; echo "NEXT $?"`}))
	pane.line("echo READY $((40+2))")
	pane.waitText("READY 42", 3*time.Minute)
	pane.line("exit 3")
	s := pane.waitText("NEXT ", 3*time.Minute)
	for _, want := range []string{"AGENTBOX 3", "FRESH 42", "NEXT 0"} {
		if !strings.Contains(s, want) {
			t.Errorf("agentbox, exit 3, then loftd -- echo in the same workspace: screen lacks %q:\n%s", want, s)
		}
	}
}

package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Live workspaces (issue 19): one VM per workspace that exec, attach, a
// second `loftd -- CMD` and ssh join.

// liveSub runs `loftd SUBCOMMAND args…` with stdin and the world's state (the subcommand
// flags come after its name, unlike cmd's session flags).
func (w *world) liveSub(stdin string, name string, args ...string) (int, string, string) {
	w.t.Helper()
	c := w.subCmd(name, args...)
	var out, errb bytes.Buffer
	c.Stdin, c.Stdout, c.Stderr = strings.NewReader(stdin), &out, &errb
	err := c.Run()
	if err != nil && c.ProcessState == nil {
		w.t.Fatalf("loftd %s %q: %v", name, args, err)
	}
	return c.ProcessState.ExitCode(), out.String(), errb.String()
}

func (w *world) subCmd(name string, args ...string) *exec.Cmd {
	c := w.cmd()
	c.Args = append([]string{bins.loftd, name}, args...)
	return c
}

// startDetached starts the world's VM with -d and stops it (kill) when
// the test ends.
func (w *world) startDetached(t *testing.T, extra ...string) {
	t.Helper()
	status, out, errs := w.run("", append([]string{"-d"}, extra...)...)
	if status != 0 {
		t.Fatalf("loftd -d: status %d, stdout %q, stderr:\n%s", status, out, errs)
	}
	t.Cleanup(func() { w.liveSub("", "kill", w.workspace) })
}

// psJSON is the part of `loftd ps --format json` these tests read.
type psJSON struct {
	PID      int  `json:"pid"`
	Live     bool `json:"live"`
	Detached bool `json:"detached"`
	Sessions []struct {
		Kind    string   `json:"kind"`
		Command []string `json:"command"`
		TTY     bool     `json:"tty"`
	} `json:"sessions"`
}

func (w *world) ps(t *testing.T) []psJSON {
	t.Helper()
	status, out, errs := w.liveSub("", "ps", "--format", "json")
	if status != 0 {
		t.Fatalf("loftd ps: %d %s", status, errs)
	}
	var ps []psJSON
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		t.Fatalf("loftd ps --format json: %v\n%s", err, out)
	}
	return ps
}

// TestLiveExec: exec into a running -d VM: stdout and stderr apart and
// exact, stdin, exit statuses, env, --root, -w; then a plain
// `loftd -- CMD` joins the same VM (its file is there); stop leaves nothing.
func TestLiveExec(t *testing.T) {
	w := newWorld(t)
	w.startDetached(t)
	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantStatus int
		wantOut    string
	}{
		{"echo", "", []string{"--", "sh", "-c", "echo out; echo err >&2"}, 0, "out\n"},
		{"status", "", []string{"--", "sh", "-c", "exit 7"}, 7, ""},
		{"signal", "", []string{"--", "sh", "-c", "kill -9 $$"}, 137, ""},
		{"missing", "", []string{"--", "no-such-command"}, 127, ""},
		{"stdin", "data", []string{"-i", "--", "cat"}, 0, "data"},
		{"no -i: EOF", "data", []string{"--", "cat"}, 0, ""},
		{"env", "", []string{"-e", "A=b c", "--", "sh", "-c", `echo "$A"`}, 0, "b c\n"},
		{"user", "", []string{"--", "id", "-u"}, 0, "1000\n"},
		{"root", "", []string{"--root", "--", "id", "-u"}, 0, "0\n"},
		{"workdir", "", []string{"-w", "/tmp", "--", "pwd"}, 0, "/tmp\n"},
		{"quoting", "", []string{"--", "printf", "%s|", "a b", "it's", "$HOME"}, 0, "a b|it's|$HOME|"},
		{"write", "", []string{"--", "sh", "-c", "echo live > /tmp/mark"}, 0, ""},
	}
	for _, tt := range tests {
		args := append([]string{"--workspace", w.workspace}, tt.args...)
		status, out, errs := w.liveSub(tt.stdin, "exec", args...)
		if status != tt.wantStatus || out != tt.wantOut {
			t.Errorf("%s: loftd exec %q = %d, %q; want %d, %q; stderr:\n%s", tt.name, tt.args, status, out, tt.wantStatus, tt.wantOut, errs)
		}
	}
	// A stop signal to loftd exec reaches the command (an ssh signal
	// request): its trap runs and its status comes back.
	c := w.subCmd("exec", "--workspace", w.workspace, "--", "sh", "-c", `trap "echo got-INT; exit 9" INT; echo ready; while :; do sleep 0.1; done`)
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("exec with a trap: read %q, %v", buf, err)
	}
	c.Process.Signal(os.Interrupt)
	rest, _ := io.ReadAll(stdout)
	c.Wait()
	if st := c.ProcessState.ExitCode(); st != 9 || string(rest) != "got-INT\n" {
		t.Errorf("SIGINT to loftd exec: status %d, output %q; want 9, \"got-INT\\n\"", st, rest)
	}

	// loftd -- CMD joins the running VM: the file exec wrote in its /tmp.
	status, out, errs := w.run("", "--debug", "--", "cat", "/tmp/mark")
	if status != 0 || out != "live\n" || !strings.Contains(errs, "joining the workspace's running VM") {
		t.Errorf("loftd -- cat /tmp/mark in the running VM = %d, %q; stderr:\n%s", status, out, errs)
	}
	ps := w.ps(t)
	if len(ps) != 1 || !ps[0].Live || !ps[0].Detached {
		t.Fatalf("loftd ps: %+v, want one live detached VM", ps)
	}
	w.checkStop(t, "stop", ps[0].PID)
}

// checkStop ends the VM with cmd (stop or kill) and checks nothing is
// left: no owner process, no task, no record.
func (w *world) checkStop(t *testing.T, cmd string, pid int) {
	t.Helper()
	if status, _, errs := w.liveSub("", cmd, w.workspace); status != 0 {
		t.Fatalf("loftd %s: %d\n%s", cmd, status, errs)
	}
	if processAlive(pid) {
		t.Errorf("loftd %s returned with the VM's owner (pid %d) alive", cmd, pid)
	}
	tasks, _ := filepath.Glob(filepath.Join(w.state, "loftd", "tasks", "*"))
	records, _ := filepath.Glob(filepath.Join(w.state, "loftd", "workspaces", "*", "live.json"))
	if len(tasks) != 0 || len(records) != 0 {
		t.Errorf("after loftd %s: tasks %q, records %q left", cmd, tasks, records)
	}
	if status, _, _ := w.liveSub("", "exec", "--workspace", w.workspace, "--", "true"); status == 0 {
		t.Errorf("loftd exec after %s succeeded", cmd)
	}
}

func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return p.Signal(sysZero) == nil
}

// TestLiveConcurrentExecs: two execs at once, each 30 MiB through a pipe
// both ways, arrive whole.
func TestLiveConcurrentExecs(t *testing.T) {
	w := newWorld(t)
	w.startDetached(t)
	const size = 30 << 20
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte('a' + i), '\n', 0, 0xff}, size/4)
			c := w.subCmd("exec", "--workspace", w.workspace, "-i", "--", "cat")
			c.Stdin = bytes.NewReader(data)
			var out, errb bytes.Buffer
			c.Stdout, c.Stderr = &out, &errb
			if err := c.Run(); err != nil {
				t.Errorf("exec %d: %v\n%s", i, err, errb.String())
				return
			}
			if got, want := sum(out.Bytes()), sum(data); got != want || out.Len() != size {
				t.Errorf("exec %d: %d bytes back, sha256 %s; want %d, %s", i, out.Len(), got, size, want)
			}
		})
	}
	wg.Wait()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestLiveIdleTimeout: a detached VM with no session left and its main
// command ended powers off after --idle-timeout, leaving nothing behind.
func TestLiveIdleTimeout(t *testing.T) {
	w := newWorld(t)
	w.startDetached(t, "--idle-timeout", "2s", "--", "true")
	if status, out, errs := w.liveSub("", "exec", "--workspace", w.workspace, "--", "echo", "still-up"); status != 0 || out != "still-up\n" {
		t.Fatalf("exec before the idle timeout = %d, %q\n%s", status, out, errs)
	}
	deadline := time.Now().Add(2 * time.Minute) // a bound on failure, not a timing check
	for len(w.ps(t)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the idle VM still runs: %+v", w.ps(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
	records, _ := filepath.Glob(filepath.Join(w.state, "loftd", "workspaces", "*", "live.json"))
	if len(records) != 0 {
		t.Errorf("records left after the idle timeout: %q", records)
	}
}

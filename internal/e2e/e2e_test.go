// Package e2e runs the real loftd binary end to end: a real VM (the QEMU
// backend under TCG in CI; libkrun where LOFTD_LIBKRUN_LIBRARY names one),
// a root filesystem built by the test from busybox-static, real btrfs disks.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containers/buildah"
	"github.com/loftd/loftd/internal/testenv"
)

// bins holds the binaries TestMain builds once for every test.
var bins struct {
	dir, loftd, guestInit string
	err                   error
}

func TestMain(m *testing.M) {
	if buildah.InitReexec() {
		return
	}
	dir, err := os.MkdirTemp("", "loftd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	bins.loftd, bins.guestInit = filepath.Join(dir, "loftd"), filepath.Join(dir, "loftd-guest-init")
	bins.err = build()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func build() error {
	cmd := exec.Command("go", "build", "-tags", "containers_image_openpgp", "-o", bins.loftd, "../../cmd/loftd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ../../cmd/loftd: %v\n%s", err, out)
	}
	return testenv.BuildGuestInit(bins.guestInit)
}

// world is one test's private state dir, workspace and busybox root.
type world struct {
	t                      testing.TB
	state, workspace, root string
}

func newWorld(t testing.TB) *world {
	t.Helper()
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	testenv.RequireRoot(t)
	testenv.RequireVM(t)
	testenv.RequireCommand(t, "mkfs.btrfs", "btrfs-progs")
	w := &world{t: t, state: t.TempDir(), workspace: t.TempDir(), root: testenv.BusyboxRoot(t)}
	// The project belongs to the user the workload runs as (cmd passes
	// their ids as sudo would), as a developer's own project does.
	if err := os.Chown(w.workspace, guestUID, guestUID); err != nil {
		t.Fatal(err)
	}
	return w
}

// guestUID is the uid and gid of the guest user in the worlds' runs.
const guestUID = 1000

// cmd returns loftd with the world's state and workspace and args.
func (w *world) cmd(args ...string) *exec.Cmd {
	base := []string{"--workspace", w.workspace, "--mem", "1", "--cpus", "1", "--guest-init", bins.guestInit}
	if !hasFlag(args, "--image") {
		base = append(base, "--rootfs", w.root)
	}
	c := exec.Command(bins.loftd, append(base, args...)...)
	c.Env = append(os.Environ(), "XDG_STATE_HOME="+w.state, "XDG_CONFIG_HOME="+filepath.Join(w.state, "config"),
		"SUDO_UID="+strconv.Itoa(guestUID), "SUDO_GID="+strconv.Itoa(guestUID))
	return c
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == flag {
			return true
		}
	}
	return false
}

// run runs loftd to the end and returns its status, stdout and stderr.
func (w *world) run(stdin string, args ...string) (int, string, string) {
	w.t.Helper()
	c := w.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdin, c.Stdout, c.Stderr = strings.NewReader(stdin), &out, &errb
	err := c.Run()
	if err != nil && c.ProcessState == nil {
		w.t.Fatalf("loftd %q: %v", args, err)
	}
	return c.ProcessState.ExitCode(), out.String(), errb.String()
}

func TestExitStatus(t *testing.T) {
	w := newWorld(t)
	if err := os.WriteFile(filepath.Join(w.root, "notexec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		argv []string
		want int
	}{
		{"zero", []string{"true"}, 0},
		{"seven", []string{"sh", "-c", "exit 7"}, 7},
		{"missing command", []string{"no-such-command"}, 127},
		{"not executable", []string{"/notexec"}, 126},
		{"killed by SIGKILL", []string{"sh", "-c", "kill -9 $$"}, 128 + 9},
	}
	for _, tt := range tests {
		status, _, stderr := w.run("", append([]string{"--"}, tt.argv...)...)
		if status != tt.want {
			t.Errorf("loftd -- %q: status %d, want %d; stderr:\n%s", tt.argv, status, tt.want, stderr)
		}
	}
}

func TestStdioSeparateAndExact(t *testing.T) {
	w := newWorld(t)
	status, stdout, stderr := w.run("", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
	if status != 7 || stdout != "out\n" || !strings.Contains(stderr, "err\n") || strings.Contains(stdout, "err") {
		t.Errorf("loftd -- sh -c 'echo out; echo err >&2; exit 7' = %d, stdout %q, stderr %q; want 7, \"out\\n\", \"err\\n\"", status, stdout, stderr)
	}
	// 1 MiB each, different content per stream, compared byte for byte.
	const mib = 1 << 20
	script := fmt.Sprintf("yes 'out: stdout line' | head -c %d; yes 'ERR: stderr line' | head -c %d >&2", mib, mib)
	status, stdout, stderr = w.run("", "--", "sh", "-c", script)
	wantOut, wantErr := repeatTo("out: stdout line\n", mib), repeatTo("ERR: stderr line\n", mib)
	if status != 0 || stdout != wantOut {
		t.Errorf("1 MiB stdout: status %d, got %d bytes, want %d identical bytes", status, len(stdout), len(wantOut))
	}
	if !strings.HasSuffix(stderr, wantErr) || strings.Contains(stdout, "ERR") {
		t.Errorf("1 MiB stderr: got %d bytes, want them to end in %d identical bytes and none on stdout", len(stderr), len(wantErr))
	}
}

// repeatTo repeats line up to exactly n bytes.
func repeatTo(line string, n int) string {
	return strings.Repeat(line, n/len(line)+1)[:n]
}

func TestStdin(t *testing.T) {
	w := newWorld(t)
	status, stdout, stderr := w.run("data", "--", "cat")
	if status != 0 || stdout != "data" {
		t.Errorf("printf data | loftd -- cat = %d, %q (stderr %q); want 0, \"data\"", status, stdout, stderr)
	}
}

func TestWorkspaceWrite(t *testing.T) {
	w := newWorld(t)
	status, _, stderr := w.run("", "--", "sh", "-c", "echo from-guest > /workspace/made-in-vm")
	data, err := os.ReadFile(filepath.Join(w.workspace, "made-in-vm"))
	if status != 0 || err != nil || string(data) != "from-guest\n" {
		t.Errorf("file written in /workspace: status %d, host file %q, %v (stderr %q)", status, data, err, stderr)
	}
}

func TestProfile(t *testing.T) {
	w := newWorld(t)
	status, _, stderr := w.run("", "--profile", "--", "true")
	for _, want := range []string{"loftd profile (host phases):", "disks", "rootfs", "vm", "guest-init"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("loftd --profile: stderr lacks %q:\n%s", want, stderr)
		}
	}
	if status != 0 {
		t.Errorf("loftd --profile -- true: status %d", status)
	}
}

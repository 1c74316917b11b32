package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// The conformance suite runs the guest contract through libkrun's own init
// (v1.19.0, built here from ../shared/third_party) under QEMU, booted as
// krun_start_enter would boot it (loftd --krun-init: /init.krun, libkrun's
// kernel command line, the krun-* ports): CI cannot run libkrun, but it can
// prove that what loftd hands libkrun's init reaches the workload intact.

// initSource is libkrun's init, C only (init.c, dhcp.c, jsmn.h).
var initSource = filepath.Join("..", "..", "..", "shared", "third_party", "libkrun-init-v1.19.0")

var krunInitBuild struct {
	once sync.Once
	path string
	err  error
}

// krunInit builds init.krun once per test process, into the binaries'
// temporary directory.
func krunInit(t *testing.T) string {
	t.Helper()
	gcc := testenv.RequireCommand(t, "gcc", "gcc")
	krunInitBuild.once.Do(func() {
		src, err := filepath.Abs(initSource)
		if err != nil {
			krunInitBuild.err = err
			return
		}
		out := filepath.Join(bins.dir, "init.krun")
		cmd := exec.Command(gcc, "-O2", "-static", "-o", out, "init.c", "dhcp.c")
		cmd.Dir = src
		if b, err := cmd.CombinedOutput(); err != nil {
			krunInitBuild.err = fmt.Errorf("build libkrun's init in %s: %v\n%s", src, err, b)
			return
		}
		krunInitBuild.path = out
	})
	if krunInitBuild.err != nil {
		t.Fatal(krunInitBuild.err)
	}
	return krunInitBuild.path
}

// krunArgs boots the VM through libkrun's init.
func krunArgs(t *testing.T, args ...string) []string {
	return append([]string{"--vmm", "qemu", "--krun-init", krunInit(t)}, args...)
}

// TestConformanceArgv: the workload's argv arrives byte for byte, echoed
// back one argument a line.
func TestConformanceArgv(t *testing.T) {
	w := newWorld(t)
	many := make([]string, 1000)
	for i := range many {
		many[i] = fmt.Sprintf("arg%d", i)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"specials", []string{"--", `a"b`, `"`, "with space", "two\nlines", "tab\there", "<&>", `back\slash`, "é", "", "-e", "KRUN_INIT=x"}},
		{"1000 arguments", many},
		{"100 KiB argument", []string{strings.Repeat("x", 100<<10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := krunArgs(t, append([]string{"--", "sh", "-c", `printf '%s\n' "$@"`, "sh"}, tt.args...)...)
			status, stdout, stderr := w.run("", args...)
			want := strings.Join(tt.args, "\n") + "\n"
			if status != 0 || stdout != want {
				t.Errorf("argv %s through libkrun's init: status %d, stdout %d bytes %.200q, want 0 and %d bytes %.200q; stderr:\n%s",
					tt.name, status, len(stdout), stdout, len(want), want, stderr)
			}
		})
	}
}

// TestConformanceEnv: -e variables, '=' and shell-special bytes in their
// values, 200 of them, reach the workload's environment exactly.
func TestConformanceEnv(t *testing.T) {
	w := newWorld(t)
	want := []string{"CONF_EQ=a=b==c", `CONF_QUOTE=say "hi"`, "CONF_SPACE= lead and trail ", "CONF_HTML=<&>", "CONF_EMPTY="}
	for i := range 200 {
		want = append(want, fmt.Sprintf("CONF_V%03d=value-%d", i, i))
	}
	var args []string
	for _, kv := range want {
		args = append(args, "-e", kv)
	}
	status, stdout, stderr := w.run("", krunArgs(t, append(args, "--", "env")...)...)
	var got []string
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, "CONF_") {
			got = append(got, l)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if status != 0 || !slices.Equal(got, want) {
		t.Errorf("env through libkrun's init: status %d, CONF_* = %q, want %q; stderr:\n%s", status, got, want, stderr)
	}
}

// TestConformanceWorkdir: the workload starts in /workspace, which libkrun's
// init cannot chdir to (it runs before the guest init mounts it).
func TestConformanceWorkdir(t *testing.T) {
	w := newWorld(t)
	status, stdout, stderr := w.run("", krunArgs(t, "--", "pwd")...)
	if status != 0 || stdout != "/workspace\n" {
		t.Errorf("pwd through libkrun's init = %d, %q; want 0, \"/workspace\\n\"; stderr:\n%s", status, stdout, stderr)
	}
}

// TestConformanceExitStatus: the workload's status, including the 126/127
// of a shell, comes out exactly. libkrun's init uses 126/127 too when it
// cannot exec the guest init; loftd tells the two apart by the guest init's
// status file (contract.StatusPath): the workload's 127 comes with one, the
// init's own without, and loftd then fails with 125 saying so.
func TestConformanceExitStatus(t *testing.T) {
	w := newWorld(t)
	if err := os.WriteFile(filepath.Join(w.root, "notexec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		argv []string
		want int
	}{
		{"0", []string{"true"}, 0},
		{"1", []string{"false"}, 1},
		{"125", []string{"sh", "-c", "exit 125"}, 125},
		{"126 not executable", []string{"/notexec"}, 126},
		{"127 not found", []string{"no-such-command"}, 127},
		{"137 SIGKILL", []string{"sh", "-c", "kill -9 $$"}, 137},
	} {
		status, _, stderr := w.run("", krunArgs(t, append([]string{"--"}, tt.argv...)...)...)
		if status != tt.want {
			t.Errorf("loftd -- %q through libkrun's init: status %d, want %d; stderr:\n%s", tt.argv, status, tt.want, stderr)
		}
	}
	// libkrun's init's own 127 (execvp ENOENT: a missing interpreter) and
	// 126 (EACCES): no status file, so loftd must not pass them off as the
	// workload's.
	for _, tt := range []struct {
		name, script string
		mode         os.FileMode
	}{
		{"init.krun 127", "#!/no/such/interpreter\n", 0o755},
		{"init.krun 126", "#!/bin/sh\n", 0o644},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := testenv.BusyboxRoot(t)
			if err := os.MkdirAll(filepath.Join(root, ".loftd"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, ".loftd", "guest-init"), []byte(tt.script), tt.mode); err != nil {
				t.Fatal(err)
			}
			w2 := *w
			w2.root = root
			status, _, stderr := w2.run("", krunArgs(t, "--guest-init", "image", "--", "true")...)
			if status != 125 || !strings.Contains(stderr, "without the guest init reporting a status") {
				t.Errorf("%s: loftd status %d, want 125 and an error saying no status was reported; stderr:\n%s", tt.name, status, stderr)
			}
		})
	}
}

// TestConformanceStdio: stdin, stdout and stderr stay separate streams
// through libkrun's init (its setup_redirects already made the krun-*
// ports fds 0, 1, 2 of the guest init, which relays them).
func TestConformanceStdio(t *testing.T) {
	w := newWorld(t)
	status, stdout, stderr := w.run("from stdin\n", krunArgs(t, "--", "sh", "-c", "echo out; echo err >&2; cat; exit 4")...)
	if status != 4 || stdout != "out\nfrom stdin\n" || !strings.Contains(stderr, "err\n") || strings.Contains(stdout, "err") {
		t.Errorf("stdio through libkrun's init = %d, stdout %q, stderr %q; want 4, \"out\\nfrom stdin\\n\", \"err\\n\"", status, stdout, stderr)
	}
}

// TestConformanceNoLostBytes: 30 MiB of random data piped out through
// libkrun's init, 2 runs, each digest equal to the guest's own.
func TestConformanceNoLostBytes(t *testing.T) {
	w := newWorld(t)
	script := fmt.Sprintf("head -c %d /dev/urandom >/tmp/r && sha256sum /tmp/r >/workspace/sum && cat /tmp/r", largeBytes)
	for i := range 2 {
		status, n, got := w.runDigest("stdout", krunArgs(t, "--", "sh", "-c", script)...)
		sum, err := os.ReadFile(filepath.Join(w.workspace, "sum"))
		want, _, _ := strings.Cut(string(sum), " ")
		if err != nil || status != 0 || got != want || n != largeBytes {
			t.Fatalf("run %d, 30 MiB through libkrun's init: status %d, host got %d bytes sha256 %s; guest sha256 %q (%v)", i, status, n, got, want, err)
		}
		os.Remove(filepath.Join(w.workspace, "sum"))
	}
}

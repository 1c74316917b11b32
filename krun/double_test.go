package krun

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// The test double: testdata/krun_double.c, compiled here into a shared
// library with libkrun's symbols that records every call (see the C file).

// buildDouble compiles the double into t.TempDir(). Each name in hide is
// left out of the dynamic symbol table, as an older libkrun would lack it.
func buildDouble(t testing.TB, hide ...string) string {
	t.Helper()
	gcc := testenv.RequireCommand(t, "gcc", "gcc")
	dir := t.TempDir()
	lib := filepath.Join(dir, "libkrun-double.so")
	args := []string{"-Wall", "-Werror", "-shared", "-fPIC", "-o", lib, filepath.Join("testdata", "krun_double.c")}
	if len(hide) > 0 {
		// Exact names in "local" win over the "global" wildcard.
		script := filepath.Join(dir, "hide.map")
		text := "{ global: *; local: " + strings.Join(hide, "; ") + "; };\n"
		if err := os.WriteFile(script, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-Wl,--version-script="+script)
	}
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return lib
}

// openDouble builds and opens the double, and points its call log at a
// fresh file, whose path it returns.
func openDouble(t *testing.T, hide ...string) (*Lib, string) {
	t.Helper()
	l, err := Open(buildDouble(t, hide...))
	if err != nil {
		t.Fatalf("Open(double) = %v, want nil", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return l, recordCalls(t)
}

// recordCalls sets the double's log to a new file in t.TempDir().
func recordCalls(t *testing.T) string {
	t.Helper()
	log := filepath.Join(t.TempDir(), "calls.log")
	t.Setenv("KRUN_DOUBLE_LOG", log)
	return log
}

// calls reads the double's log: one line per krun_* call.
func calls(t *testing.T, log string) []string {
	t.Helper()
	data, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// compareCalls reports every line where got differs from want.
func compareCalls(t *testing.T, what string, got, want []string) {
	t.Helper()
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("%s call %d = %q, want %q", what, i, g, w)
		}
	}
	if t.Failed() {
		t.Logf("%s recorded calls:\n%s", what, strings.Join(got, "\n"))
	}
}

// Package krundouble builds the libkrun test double (testdata/krun_double.c)
// into a shared library and reads the calls it records, for the tests of the
// binding (krun) and of the libkrun backend (vmm/krun). The double has
// libkrun's C signatures and does nothing but log each call, so the tests
// exercise the real purego path (dlopen, dlsym, argument passing).
//
// The double reads these variables at each call:
//
//	KRUN_DOUBLE_LOG   file that gets one line per call, every argument (Record)
//	KRUN_DOUBLE_FAIL  name of one function that returns -EINVAL
//	KRUN_DOUBLE_EXIT  krun_start_enter exits the process with this status
//
// Like krun, it knows nothing of loftd but internal/testenv.
package krundouble

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

//go:embed testdata/krun_double.c
var source []byte

// Ctx is the context ID the double's krun_create_ctx returns.
const Ctx = 7

// Build compiles the double into t.TempDir() and returns its path. Each name
// in hide is left out of the dynamic symbol table, as an older libkrun would
// lack it.
func Build(t testing.TB, hide ...string) string {
	t.Helper()
	gcc := testenv.RequireCommand(t, "gcc", "gcc")
	dir := t.TempDir()
	src := filepath.Join(dir, "krun_double.c")
	if err := os.WriteFile(src, source, 0o644); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "libkrun-double.so")
	args := []string{"-Wall", "-Werror", "-shared", "-fPIC", "-o", lib, src}
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

// Record points the double's call log at a new file in t.TempDir() and
// returns its path.
func Record(t testing.TB) string {
	t.Helper()
	log := filepath.Join(t.TempDir(), "calls.log")
	t.Setenv("KRUN_DOUBLE_LOG", log)
	return log
}

// Calls reads the double's log: one line per krun_* call, nil for none.
func Calls(t testing.TB, log string) []string {
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

// Compare reports every line where got differs from want.
func Compare(t testing.TB, what string, got, want []string) {
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

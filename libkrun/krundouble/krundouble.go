// Package krundouble builds the libkrun test double (testdata/krun_double.c)
// into a shared library and reads the calls it records, for the tests of the
// binding (libkrun) and of the libkrun backend (helper/krun). The double has
// libkrun's C signatures and does nothing but log each call, so the tests
// exercise the real purego path (dlopen, dlsym, argument passing).
//
// The double is as strict as libkrun v1.19.0 (each rule cites its line of
// src/libkrun/src/lib.rs in the C file): contexts from 0, ENOENT for an
// unknown one, EINVAL where libkrun refuses an argument, and an abort where
// libkrun would crash (a NULL port map, a second logger). It reads these
// variables at each call:
//
//	KRUN_DOUBLE_LOG        file that gets one line per call, every argument (Record)
//	KRUN_DOUBLE_FAIL       name of one function that returns -EINVAL
//	KRUN_DOUBLE_EXIT       krun_start_enter exits the process with this status
//	KRUN_DOUBLE_VERSION    the release whose rules apply, "1.17" (Emulate; default 1.19)
//	KRUN_DOUBLE_MAX_VCPUS  what krun_get_max_vcpus answers (default 1024)
//
// Like krun, it knows nothing of loftd but internal/testenv.
package krundouble

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

//go:embed testdata/krun_double.c
var source []byte

// Ctx is the ID of the first context of a freshly loaded double: like
// libkrun's, IDs count from 0 (lib.rs v1.19.0:458, 557).
const Ctx = 0

// since lists the symbols of the double by the libkrun release (1.minor)
// whose include/libkrun.h added them, for HideBefore.
var since = map[string]int{
	"krun_check_nested_virt": 12, "krun_init_log": 13, "krun_add_net_unixstream": 15,
	"krun_get_max_vcpus": 16, "krun_disable_implicit_console": 16, "krun_add_virtio_console_default": 16,
	"krun_disable_implicit_vsock": 17, "krun_add_vsock": 17, "krun_add_virtio_console_multiport": 17,
	"krun_add_console_port_inout": 17, "krun_has_feature": 18, "krun_fs_add_overlay_file": 19, "krun_add_virtiofs3": 19,
}

// HideBefore lists the double's symbols that libkrun 1.minor lacks: pass it
// to Build, and minor to Emulate, to play that release.
func HideBefore(minor int) []string {
	var hide []string
	for name, m := range since {
		if m > minor {
			hide = append(hide, name)
		}
	}
	sort.Strings(hide)
	return hide
}

// Emulate makes the double apply the rules of libkrun 1.minor (the ones
// that changed in 1.15 and 1.18) for the rest of the test.
func Emulate(t testing.TB, minor int) {
	t.Setenv("KRUN_DOUBLE_VERSION", fmt.Sprintf("1.%d", minor))
}

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

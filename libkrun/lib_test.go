package libkrun

import (
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestLibraryCandidates(t *testing.T) {
	sys := t.TempDir() // loftd's system directory, where fetch-libkrun installs
	installed := sys + "/libkrun.so.1"
	if err := os.WriteFile(installed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		env  string
		dirs []string
		want []string
	}{
		{"", nil, []string{"libkrun.so.1", "libkrun.so"}},
		{"", []string{"/nonexistent", sys}, []string{installed, "libkrun.so"}},
		{"/opt/krun/lib64/libkrun.so.1.17.0", []string{sys}, []string{"/opt/krun/lib64/libkrun.so.1.17.0"}},
	}
	old := SystemDirs
	t.Cleanup(func() { SystemDirs = old })
	for _, tt := range tests {
		t.Setenv(LibraryEnv, tt.env)
		SystemDirs = tt.dirs
		if got := LibraryCandidates(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("LibraryCandidates() with %s=%q and system dirs %q = %q, want %q", LibraryEnv, tt.env, tt.dirs, got, tt.want)
		}
	}
}

func TestOpenNotFound(t *testing.T) {
	const path = "/nonexistent/libkrun.so.1"
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), LibraryEnv) {
		t.Errorf("Open(%q) = %v, want an error naming the path and %s", path, err, LibraryEnv)
	}
}

func TestOpenFromEnv(t *testing.T) {
	lib := buildDouble(t)
	t.Setenv(LibraryEnv, lib)
	l, err := Open("")
	if err != nil {
		t.Fatalf("Open(\"\") with %s=%s = %v, want nil", LibraryEnv, lib, err)
	}
	defer l.Close()
	if l.Path() != lib {
		t.Errorf("Open(\"\").Path() = %q, want %q", l.Path(), lib)
	}
	if len(l.Missing()) != 0 {
		t.Errorf("Open(\"\").Missing() = %q, want none", l.Missing())
	}
}

func TestOpenMissingRequiredSymbols(t *testing.T) {
	tests := []struct {
		hide []string
		want string
	}{
		{[]string{"krun_set_root"}, ": missing symbols krun_set_root (libkrun too old"},
		{[]string{"krun_set_exec", "krun_add_disk"}, ": missing symbols krun_add_disk, krun_set_exec (libkrun too old"},
		// libkrun 1.11: its init cannot report the workload's exit status.
		{[]string{"krun_check_nested_virt"}, ": missing symbols krun_check_nested_virt (libkrun older than 1.12, whose init cannot report the exit status; need >= 1.12)"},
	}
	for _, tt := range tests {
		lib := buildDouble(t, tt.hide...)
		l, err := Open(lib)
		if err == nil {
			l.Close()
			t.Fatalf("Open(double without %q) = nil error, want one", tt.hide)
		}
		if want := "libkrun " + lib + tt.want; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Open(double without %q) = %q, want prefix %q", tt.hide, err, want)
		}
	}
}

func TestOpenMissingOptionalSymbol(t *testing.T) {
	l, log := openDouble(t, "krun_add_net_unixstream", "krun_has_feature")
	want := []string{"krun_add_net_unixstream", "krun_has_feature"}
	if got := l.Missing(); !reflect.DeepEqual(got, want) {
		t.Errorf("Missing() = %q, want %q", got, want)
	}
	if _, err := l.HasFeature(FeatureNet); err == nil || !strings.Contains(err.Error(), "krun_has_feature: not in libkrun") {
		t.Errorf("HasFeature() = %v, want an error saying the library lacks it", err)
	}
	err := l.AddNetUnixstream(7, "/run/passt.sock", -1, [6]byte{2, 0, 0, 0, 0, 1}, NetFeaturesCompat, 0)
	const wantErr = "krun_add_net_unixstream: not in libkrun "
	if err == nil || !strings.HasPrefix(err.Error(), wantErr) {
		t.Errorf("AddNetUnixstream() = %v, want prefix %q", err, wantErr)
	}
	if got := calls(t, log); got != nil {
		t.Errorf("calls of missing symbols = %q, want none", got)
	}
	// The calls the library has still work.
	ctx, err := l.CreateCtx()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AddDisk(ctx, "d", "/d.raw", false); err != nil {
		t.Errorf("AddDisk() = %v, want nil", err)
	}
}

func TestCheckNestedVirt(t *testing.T) {
	l, log := openDouble(t)
	ok, err := l.CheckNestedVirt()
	if !ok || err != nil {
		t.Errorf("CheckNestedVirt() = %v, %v, want true, nil", ok, err)
	}
	compareCalls(t, "CheckNestedVirt()", calls(t, log), []string{"krun_check_nested_virt"})
}

func TestLoggingOnce(t *testing.T) {
	// libkrun aborts the process on a second logger setup, so the binding
	// refuses it, with ErrLoggingSet for callers that only want it set up.
	l, log := openDouble(t)
	if err := l.InitLog(LogTargetDefault, LogDebug, LogStyleNever, LogOptionNoEnv); err != nil {
		t.Fatalf("InitLog() = %v, want nil", err)
	}
	if err := l.SetLogLevel(LogInfo); !errors.Is(err, ErrLoggingSet) || !strings.Contains(err.Error(), "krun_set_log_level: libkrun logging is already set up") {
		t.Errorf("SetLogLevel() after InitLog() = %v, want an already set up error", err)
	}
	if err := l.InitLog(LogTargetDefault, LogDebug, LogStyleNever, 0); err == nil {
		t.Errorf("InitLog() twice = nil error, want one")
	}
	compareCalls(t, "InitLog(); SetLogLevel(); InitLog()", calls(t, log), []string{
		"krun_init_log fd=-1 level=4 style=2 options=1",
	})
}

func TestLoggingSharedBetweenOpens(t *testing.T) {
	// Two opens of one library share libkrun's process-wide logger; closing
	// one keeps the library loaded, so the other must still refuse.
	lib := buildDouble(t)
	log := recordCalls(t)
	a, err := Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.SetLogLevel(LogWarn); err != nil {
		t.Fatalf("first SetLogLevel() = %v, want nil", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.SetLogLevel(LogWarn); err == nil {
		t.Errorf("SetLogLevel() on a second open of %s = nil error, want already set up", lib)
	}
	compareCalls(t, "SetLogLevel() on two opens", calls(t, log), []string{"krun_set_log_level level=2"})
}

func TestNULByteMakesNoCall(t *testing.T) {
	l, log := openDouble(t)
	tests := []struct {
		name string
		call func() error
	}{
		{"SetRoot", func() error { return l.SetRoot(7, "/r\x00oot") }},
		{"SetExec argv", func() error { return l.SetExec(7, "/init", []string{"a\x00"}, []string{}) }},
		{"SetPortMap", func() error { return l.SetPortMap(7, []string{"1:2", "\x00"}) }},
	}
	for _, tt := range tests {
		if err := tt.call(); err == nil || !strings.Contains(err.Error(), "contains a NUL byte") {
			t.Errorf("%s(string with NUL) = %v, want a NUL byte error", tt.name, err)
		}
	}
	if got := calls(t, log); got != nil {
		t.Errorf("calls after NUL arguments = %q, want none", got)
	}
}

func TestErrorMessage(t *testing.T) {
	err := error(&Error{Op: "krun_add_disk", Errno: syscall.EINVAL})
	if got, want := err.Error(), "krun_add_disk: invalid argument"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, syscall.EINVAL) {
		t.Errorf("errors.Is(%v, EINVAL) = false, want true", err)
	}
}

func TestStartEnterError(t *testing.T) {
	l, _ := openDouble(t)
	ctx, err := l.CreateCtx()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KRUN_DOUBLE_FAIL", "krun_start_enter")
	err = l.StartEnter(ctx)
	if !errors.Is(err, syscall.EINVAL) || err.Error() != "krun_start_enter: invalid argument" {
		t.Errorf("StartEnter(%d) = %v, want krun_start_enter: invalid argument", ctx, err)
	}
	t.Setenv("KRUN_DOUBLE_FAIL", "")
	if ctx, err = l.CreateCtx(); err != nil {
		t.Fatal(err)
	}
	if err := l.StartEnter(ctx); err == nil || !strings.Contains(err.Error(), "returned 0 without running the VM") {
		t.Errorf("StartEnter(%d) returning 0 = %v, want an error", ctx, err)
	}
}

// TestStartEnterExits runs the helper's sequence in a child process (this
// test binary again): libkrun, like the double, exits the process with the
// workload's status, so StartEnter must not return.
func TestStartEnterExits(t *testing.T) {
	if os.Getenv("KRUN_TEST_CHILD") == "1" {
		l, err := Open(os.Getenv(LibraryEnv))
		if err != nil {
			t.Fatal(err)
		}
		ctx, err := l.CreateCtx()
		if err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(l.SetVMConfig(ctx, 1, 256), l.SetRoot(ctx, "/r"), l.SetExec(ctx, "/init", []string{}, []string{})); err != nil {
			t.Fatal(err)
		}
		t.Fatalf("StartEnter(%d) returned %v", ctx, l.StartEnter(ctx))
	}
	lib := buildDouble(t)
	log := recordCalls(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestStartEnterExits$")
	cmd.Env = append(os.Environ(), "KRUN_TEST_CHILD=1", "KRUN_DOUBLE_EXIT=42", LibraryEnv+"="+lib)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 42 {
		t.Fatalf("child StartEnter exit = %v, want status 42\n%s", err, out)
	}
	got := calls(t, log)
	if last := got[len(got)-1]; last != "krun_start_enter ctx=0" {
		t.Errorf("child's last call = %q, want krun_start_enter ctx=0", last)
	}
}

func BenchmarkOpen(b *testing.B) {
	lib := buildDouble(b)
	for b.Loop() {
		l, err := Open(lib)
		if err != nil {
			b.Fatal(err)
		}
		l.Close()
	}
}

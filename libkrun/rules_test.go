package libkrun

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/libkrun/krundouble"
)

// rule is one refusal (or acceptance) of libkrun that the double
// (libkrun/krundouble) plays: a call on a fresh context after setup.
type rule struct {
	name  string
	minor int                       // the release played, 1.minor
	setup func(l *Lib, c Ctx) error // on a fresh context, must succeed
	call  func(l *Lib, c Ctx) error
	want  error // nil: accepted
}

// entersRule calls krun_start_enter, which the real library cannot be
// asked to run without KVM: it panics inside (krun.CheckKVM).
const entersRule = "entered context"

// doubleRules are the rules of the double, each citing in its C source the
// line of libkrun's lib.rs it comes from, the release-dependent ones on
// both sides of the release.
func doubleRules(t *testing.T) []rule {
	mac := [6]byte{0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee}
	sock := filepath.Join(t.TempDir(), "exists.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	net := func(l *Lib, c Ctx) error {
		return l.AddNetUnixstream(c, "/run/passt.sock", -1, mac, NetFeaturesCompat, 0)
	}
	return []rule{
		{"port map next to a net device, 1.15", 15, net, func(l *Lib, c Ctx) error { return l.SetPortMap(c, []string{}) }, syscall.EINVAL},
		{"port map next to a net device, 1.14", 14, net, func(l *Lib, c Ctx) error { return l.SetPortMap(c, []string{}) }, nil},
		{"DHCP client flag, 1.17", 17, nil, func(l *Lib, c Ctx) error {
			return l.AddNetUnixstream(c, "/run/passt.sock", -1, mac, NetFeaturesCompat, NetFlagDHCPClient)
		}, syscall.EINVAL},
		{"DHCP client flag, 1.18", 18, nil, func(l *Lib, c Ctx) error {
			return l.AddNetUnixstream(c, "/run/passt.sock", -1, mac, NetFeaturesCompat, NetFlagDHCPClient)
		}, nil},
		{"vfkit flag on a unixstream", 19, nil, func(l *Lib, c Ctx) error { return l.AddNetUnixstream(c, "/p", -1, mac, 0, NetFlagVfkit) }, syscall.EINVAL},
		{"unknown net feature", 19, nil, func(l *Lib, c Ctx) error { return l.AddNetUnixstream(c, "/p", -1, mac, 1<<20, 0) }, syscall.EINVAL},
		{"net by path and fd", 19, nil, func(l *Lib, c Ctx) error { return l.AddNetUnixstream(c, "/p", 3, mac, 0, 0) }, syscall.EINVAL},
		{"net by neither", 19, nil, func(l *Lib, c Ctx) error { return l.AddNetUnixstream(c, "", -1, mac, 0, 0) }, syscall.EINVAL},
		{"nested virt, 1.17", 17, nil, func(l *Lib, c Ctx) error { return l.SetNestedVirt(c, true) }, syscall.EINVAL},
		{"nested virt, 1.18", 18, nil, func(l *Lib, c Ctx) error { return l.SetNestedVirt(c, true) }, nil},
		{"NULL rlimits", 19, nil, func(l *Lib, c Ctx) error { return l.SetRlimits(c, nil) }, syscall.EINVAL},
		{"0 vCPUs", 19, nil, func(l *Lib, c Ctx) error { return l.SetVMConfig(c, 0, 512) }, syscall.EINVAL},
		{"0 MiB", 19, nil, func(l *Lib, c Ctx) error { return l.SetVMConfig(c, 1, 0) }, syscall.EINVAL},
		{"listen on an existing socket path", 19, nil, func(l *Lib, c Ctx) error { return l.AddVsockPort2(c, 1024, sock, true) }, syscall.EEXIST},
		{"connect to an existing socket path", 19, nil, func(l *Lib, c Ctx) error { return l.AddVsockPort2(c, 1024, sock, false) }, nil},
		{"port map without a colon", 19, nil, func(l *Lib, c Ctx) error { return l.SetPortMap(c, []string{"80"}) }, syscall.EINVAL},
		{"port beyond u16", 19, nil, func(l *Lib, c Ctx) error { return l.SetPortMap(c, []string{"70000:80"}) }, syscall.EINVAL},
		{"guest port twice", 19, nil, func(l *Lib, c Ctx) error { return l.SetPortMap(c, []string{"1:80", "2:80"}) }, syscall.EINVAL},
		{"host port twice", 19, nil, func(l *Lib, c Ctx) error { return l.SetPortMap(c, []string{"1:80", "1:81"}) }, syscall.EINVAL},
		{"port map after disabling the vsock", 19, func(l *Lib, c Ctx) error { return l.DisableImplicitVsock(c) },
			func(l *Lib, c Ctx) error { return l.SetPortMap(c, []string{}) }, syscall.ENODEV},
		{"vsock port after disabling the vsock", 19, func(l *Lib, c Ctx) error { return l.DisableImplicitVsock(c) },
			func(l *Lib, c Ctx) error { return l.AddVsockPort2(c, 1024, "/v.sock", false) }, syscall.ENODEV},
		{"vsock port on an explicit vsock", 19, func(l *Lib, c Ctx) error { return errors.Join(l.DisableImplicitVsock(c), l.AddVsock(c, 0)) },
			func(l *Lib, c Ctx) error { return l.AddVsockPort2(c, 1024, "/v.sock", false) }, nil},
		{"explicit vsock next to the implicit one", 19, nil, func(l *Lib, c Ctx) error { return l.AddVsock(c, 0) }, syscall.EEXIST},
		{"unknown TSI flag", 19, func(l *Lib, c Ctx) error { return l.DisableImplicitVsock(c) }, func(l *Lib, c Ctx) error { return l.AddVsock(c, 4) }, syscall.EINVAL},
		{"console port on the default console", 19, func(l *Lib, c Ctx) error { return l.AddVirtioConsoleDefault(c, 0, 1, 2) },
			func(l *Lib, c Ctx) error { return l.AddConsolePortInout(c, 0, "p", 0, 1) }, syscall.EINVAL},
		{"overlay on an unknown share", 19, func(l *Lib, c Ctx) error { return l.SetRoot(c, "/r") },
			func(l *Lib, c Ctx) error { return l.FsAddOverlayFile(c, "nope", "f", nil, 0o644, false) }, syscall.ENOENT},
		{"read-only share on an unknown context", 19, nil,
			func(l *Lib, c Ctx) error { return l.AddVirtiofs3(c+1, "loftd-vol0", "/srv/d", 0, true) }, syscall.ENOENT},
		{"log to stdin", 19, nil, func(l *Lib, c Ctx) error { return l.InitLog(0, LogInfo, LogStyleNever, 0) }, syscall.EINVAL},
		{"unknown feature", 19, nil, func(l *Lib, c Ctx) error { _, err := l.HasFeature(12); return err }, syscall.EINVAL},
		{"unknown context", 19, nil, func(l *Lib, c Ctx) error { return l.SetRoot(c+1, "/r") }, syscall.ENOENT},
		{"freed context", 19, nil, func(l *Lib, c Ctx) error { return errors.Join(l.FreeCtx(c), l.FreeCtx(c)) }, syscall.ENOENT},
		{entersRule, 19, nil, func(l *Lib, c Ctx) error { _ = l.StartEnter(c); return l.StartEnter(c) }, syscall.ENOENT},
	}
}

// TestDoubleRules checks each rule on the double, at its release.
func TestDoubleRules(t *testing.T) {
	tests := doubleRules(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			krundouble.Emulate(t, tt.minor)
			l, _ := openDouble(t)
			c, err := l.CreateCtx()
			if err != nil || c != krundouble.Ctx {
				t.Fatalf("CreateCtx() = %d, %v, want %d, nil (IDs count from 0)", c, err, krundouble.Ctx)
			}
			if tt.setup != nil {
				if err := tt.setup(l, c); err != nil {
					t.Fatalf("setup: %v", err)
				}
			}
			err = tt.call(l, c)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("%s on libkrun 1.%d = %v, want %v", tt.name, tt.minor, err, tt.want)
			}
		})
	}
}

// TestRealLibkrunRules runs each rule of the double on the real libkrun
// (the release scripts/fetch-libkrun builds, 1.19) with the same calls, and
// on the double playing that release: both must give the same result or
// errno. Where they differ, the real library is right and the double is
// wrong.
func TestRealLibkrunRules(t *testing.T) {
	path := testenv.RequireLibkrun(t)
	real, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	defer real.Close()
	minor := 19
	if !real.AtLeast(minor) {
		t.Fatalf("real libkrun %s is %s; the rules are checked against 1.%d", path, real.Version(), minor)
	}
	for _, tt := range doubleRules(t) {
		if tt.name == entersRule {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			krundouble.Emulate(t, minor)
			double, _ := openDouble(t)
			want := applyRule(t, double, tt)
			if got := applyRule(t, real, tt); got != want {
				t.Errorf("%s: real libkrun 1.%d gives %v, the double playing it gives %v", tt.name, minor, got, want)
			}
		})
	}
}

// applyRule runs tt on a fresh context of l and returns the errno it ends
// with (0 when accepted; notErrno for an error the binding made itself).
func applyRule(t *testing.T, l *Lib, tt rule) syscall.Errno {
	c, err := l.CreateCtx()
	if err != nil {
		t.Fatalf("CreateCtx() on %s = %v", l.Path(), err)
	}
	defer l.FreeCtx(c)
	if tt.setup != nil {
		if err := tt.setup(l, c); err != nil {
			t.Fatalf("setup on %s: %v", l.Path(), err)
		}
	}
	err = tt.call(l, c)
	var kerr *Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &kerr):
		return kerr.Errno
	default:
		return notErrno
	}
}

// notErrno stands for an error that is no libkrun errno.
const notErrno = syscall.Errno(^uintptr(0))

// TestDoubleCrashes: where libkrun crashes (a NULL port map, a second
// logger), the double aborts the process too. A child process (this test
// binary again) makes the raw C call the binding refuses to make.
func TestDoubleCrashes(t *testing.T) {
	if what := os.Getenv("KRUN_TEST_CRASH"); what != "" {
		l, err := Open(os.Getenv(LibraryEnv))
		if err != nil {
			t.Fatal(err)
		}
		switch what {
		case "port map":
			c, _ := l.CreateCtx()
			l.setPortMap(uint32(c), nil)
		case "logger":
			l.setLogLevel(2)
			l.initLog(-1, 2, 2, 0)
		}
		os.Exit(0)
	}
	lib := buildDouble(t)
	for _, what := range []string{"port map", "logger"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDoubleCrashes$")
		cmd.Env = append(os.Environ(), "KRUN_TEST_CRASH="+what, LibraryEnv+"="+lib)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		// Go's runtime reports the SIGABRT and exits 2.
		if !errors.As(err, &exit) || !strings.Contains(string(out), "libkrun would crash here") || !strings.Contains(string(out), "SIGABRT") {
			t.Errorf("child making a %s crash = %v, want it aborted\n%s", what, err, out)
		}
	}
	// The binding never passes the NULL port map.
	l, log := openDouble(t)
	if err := l.SetPortMap(0, nil); err == nil || !strings.Contains(err.Error(), "NULL port map crashes libkrun") {
		t.Errorf("SetPortMap(nil) = %v, want a refusal", err)
	}
	if got := calls(t, log); got != nil {
		t.Errorf("SetPortMap(nil) calls = %q, want none", got)
	}
}

// TestVersion: the release is read from the symbol table, a lower bound;
// below MinVersion Open fails naming the symbol and the release.
func TestVersion(t *testing.T) {
	tests := []struct {
		minor int
		want  string
	}{
		{12, "1.12"}, {13, "1.13"}, {14, "1.13"}, {15, "1.13"}, {16, "1.16"}, {17, "1.17"}, {18, "1.18"}, {19, "1.19"},
	}
	for _, tt := range tests {
		l, err := Open(buildDouble(t, krundouble.HideBefore(tt.minor)...))
		if err != nil {
			t.Fatalf("Open(double of 1.%d) = %v", tt.minor, err)
		}
		if got := l.Version(); got != tt.want {
			t.Errorf("Open(double of 1.%d).Version() = %q, want %q", tt.minor, got, tt.want)
		}
		if !l.AtLeast(12) || l.AtLeast(tt.minor+1) {
			t.Errorf("Open(double of 1.%d).AtLeast(12, %d) = %v, %v, want true, false", tt.minor, tt.minor+1, l.AtLeast(12), l.AtLeast(tt.minor+1))
		}
		l.Close()
	}
	_, err := Open(buildDouble(t, krundouble.HideBefore(11)...))
	if err == nil || !strings.Contains(err.Error(), "missing symbols "+VersionSymbol) || !strings.Contains(err.Error(), "need >= 1.12") {
		t.Errorf("Open(double of 1.11) = %v, want an error naming %s and 1.12", err, VersionSymbol)
	}
}

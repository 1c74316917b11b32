package session

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/parts"
)

// TestGuestInitPart: the guest init is found in ../libexec/loftd next to
// loftd (an install), else in loftd's own directory (a source build's
// bin/), from the path in _LOFTD_EXE (what the keep-id namespace sees);
// --guest-init wins over both.
func TestGuestInitPart(t *testing.T) {
	prefix := t.TempDir()
	exe := filepath.Join(prefix, "bin", "loftd")
	installed := filepath.Join(prefix, "libexec", "loftd", "loftd-guest-init")
	built := filepath.Join(prefix, "bin", "loftd-guest-init")
	flag := filepath.Join(prefix, "other", "init")
	for _, p := range []string{exe, installed, built, flag} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(parts.ExeEnv, exe)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", "")
	if got, err := guestInitSource(flag); got != flag || err != nil {
		t.Errorf("guestInitSource(%q) = %q, %v; want the flag's", flag, got, err)
	}
	if got, err := guestInitSource(""); got != installed || err != nil {
		t.Errorf("guestInitSource(\"\") = %q, %v; want %s", got, err, installed)
	}
	if f, err := FindGuestInit(""); err != nil || f.String() != installed+" (next to the executable)" {
		t.Errorf("FindGuestInit(\"\") = %v, %v; want %s (next to the executable)", f, err, installed)
	}
	if err := os.Remove(installed); err != nil {
		t.Fatal(err)
	}
	if got, err := guestInitSource(""); got != built || err != nil {
		t.Errorf("guestInitSource(\"\") without the installed one = %q, %v; want %s", got, err, built)
	}
	if err := os.Remove(built); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/usr/libexec/loftd/loftd-guest-init"); err == nil {
		return // a system one is installed: the system rule finds it
	}
	if _, err := FindGuestInit(""); err == nil || !strings.Contains(err.Error(), filepath.Join(prefix, "libexec", "loftd")) {
		t.Errorf("FindGuestInit(\"\") with none = %v, want an error naming where it looked", err)
	}
}

// TestFindPasst: a session uses the first passt in the search order that
// carries TCP into the guest (--map-host-loopback), else the first that
// answers; LOFTD_PASST is taken as given; the features say whether it can
// publish TCP (doctor's level: ok, warn, or fail for none), and the hint
// for one that cannot names the fix.
func TestFindPasst(t *testing.T) {
	const (
		oldHelp = "  -F, --fd FD\n  --no-map-gw\n"
		newHelp = oldHelp + "  --map-host-loopback ADDR\n"
	)
	tests := []struct {
		name string
		// place → help text ("" for a passt that fails without output)
		have  map[string]string
		env   string // a place for LOFTD_PASST
		want  string // the place chosen; "" for an error
		level string // doctor's level
	}{
		{"old on PATH, new in the data dir", map[string]string{"path": oldHelp, "data": newHelp}, "", "data", "ok"},
		{"new in loftd's system dir beats old on PATH", map[string]string{"path": oldHelp, "sys": newHelp}, "", "sys", "ok"},
		{"new on PATH beats old beside loftd", map[string]string{"beside": oldHelp, "path": newHelp}, "", "path", "ok"},
		{"only old ones: the first", map[string]string{"beside": oldHelp, "path": oldHelp}, "", "beside", "warn"},
		{"a broken one is passed over", map[string]string{"beside": "", "path": oldHelp}, "", "path", "warn"},
		{"the override is taken as given", map[string]string{"path": newHelp, "other": oldHelp}, "other", "other", "warn"},
		{"none", map[string]string{}, "", "", "fail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dirs := map[string]string{
				"beside": filepath.Join(root, "prefix", "libexec", "loftd"),
				"sys":    filepath.Join(root, "sys"),
				"path":   filepath.Join(root, "path"),
				"data":   filepath.Join(root, "data", "loftd", "libexec"),
				"other":  filepath.Join(root, "other"),
			}
			for place, help := range tt.have {
				writeFakePasst(t, dirs[place], help)
			}
			exe := filepath.Join(root, "prefix", "bin", "loftd")
			t.Setenv(parts.ExeEnv, exe)
			t.Setenv("PATH", dirs["path"])
			t.Setenv("XDG_DATA_HOME", filepath.Join(root, "data"))
			t.Setenv("LOFTD_PASST", "")
			if tt.env != "" {
				t.Setenv("LOFTD_PASST", filepath.Join(dirs[tt.env], "passt"))
			}
			saved := passtSystemDirs
			passtSystemDirs = []string{dirs["sys"]}
			t.Cleanup(func() { passtSystemDirs = saved })

			f, feat, err := FindPasst("")
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "passt") {
					t.Errorf("FindPasst = %v, %v; want an error naming passt", f, err)
				}
			} else if want := filepath.Join(dirs[tt.want], "passt"); f.Path != want || err != nil {
				t.Errorf("FindPasst = %v (%+v), %v; want %s", f, feat, err, want)
			}
			if tt.level != "fail" && feat.MapHostLoopback != (tt.level == "ok") {
				t.Errorf("FindPasst features = %+v; want MapHostLoopback %v (doctor's level %s)", feat, tt.level == "ok", tt.level)
			}
		})
	}
}

// writeFakePasst writes dir/passt, a shell stand-in that prints help for
// --help (on stderr, as passt does), or fails silently when help is "".
// TestPasstTCPHint: the fix doctor and a refused TCP publish print names
// the script that installs a passt that can publish TCP.
func TestPasstTCPHint(t *testing.T) {
	if !strings.Contains(PasstTCPHint, "scripts/fetch-passt") {
		t.Errorf("PasstTCPHint = %q, want it to name scripts/fetch-passt", PasstTCPHint)
	}
}

func writeFakePasst(t *testing.T, dir, help string) {
	t.Helper()
	script := "#!/bin/sh\nexit 1\n"
	if help != "" {
		script = "#!/bin/sh\n[ \"$1\" = --help ] && printf '%s' '" + help + "' >&2\nexit 0\n"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "passt"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

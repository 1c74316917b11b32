package host

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
	if c := checkGuestInit(""); c.level != "ok" || c.detail != installed+" (next to the executable)" {
		t.Errorf("checkGuestInit = %+v, want ok and %s (next to the executable)", c, installed)
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
	if c := checkGuestInit(""); c.level != "fail" || !strings.Contains(c.detail, filepath.Join(prefix, "libexec", "loftd")) {
		t.Errorf("checkGuestInit with none = %+v, want fail naming where it looked", c)
	}
}

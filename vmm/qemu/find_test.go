package qemu

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/loftd/loftd/internal/parts"
)

// TestFindVirtiofsdBeside: a virtiofsd in ../libexec/loftd next to loftd
// wins over the system's; without it, the system's (Debian's is outside
// $PATH, in /usr/lib/qemu) is found.
func TestFindVirtiofsdBeside(t *testing.T) {
	prefix := t.TempDir()
	exe := filepath.Join(prefix, "bin", "loftd")
	beside := filepath.Join(prefix, "libexec", "loftd", "virtiofsd")
	for _, p := range []string{exe, beside} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(parts.ExeEnv, exe)
	got, err := LocateVirtiofsd()
	if err != nil || got.Path != beside || got.Rule != parts.Beside {
		t.Errorf("LocateVirtiofsd() = %+v, %v; want %s next to the executable", got, err, beside)
	}
	if err := os.Remove(beside); err != nil {
		t.Fatal(err)
	}
	sys, ok := systemVirtiofsd("virtiofsd")
	got, err = LocateVirtiofsd()
	if !ok {
		if err == nil {
			t.Errorf("LocateVirtiofsd() = %+v with no virtiofsd on the system, want an error", got)
		}
		return
	}
	if err != nil || got.Path != sys || got.Rule != parts.System {
		t.Errorf("LocateVirtiofsd() = %+v, %v; want %s (system)", got, err, sys)
	}
}

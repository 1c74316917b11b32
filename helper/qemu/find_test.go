package qemu

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/loftd/loftd/internal/parts"
	"github.com/loftd/loftd/launch"
)

// fakeVirtiofsd writes a virtiofsd stand-in at path whose --help reads as
// the Rust one's (--shared-dir) or QEMU's C one's (-o source=).
func fakeVirtiofsd(t *testing.T, path string, rust bool) {
	t.Helper()
	help := "echo '  -o source=PATH'"
	if rust {
		help = "echo '  --shared-dir <SHARED_DIR>'"
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+help+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestLocateVirtiofsd: the first Rust virtiofsd the rules find wins (next
// to loftd, then the system's places, then $PATH), and a C one only when
// there is no Rust one; LOFTD_VIRTIOFSD is taken as given.
func TestLocateVirtiofsd(t *testing.T) {
	tests := []struct {
		name                  string
		beside, local, debian string // "rust", "c" or "" (absent)
		env                   bool   // LOFTD_VIRTIOFSD names the Debian one
		want                  string // beside, local or debian
		rule                  parts.Rule
	}{
		{"rust beside wins", "rust", "rust", "c", false, "beside", parts.Beside},
		{"c beside loses to a rust one on the system", "c", "rust", "c", false, "local", parts.System},
		{"rust on the system before c", "", "rust", "c", false, "local", parts.System},
		{"c alone", "", "", "c", false, "debian", parts.System},
		{"c beside, c on the system: the first", "c", "", "c", false, "beside", parts.Beside},
		{"override as given", "rust", "rust", "c", true, "debian", parts.Override},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := t.TempDir()
			exe := filepath.Join(prefix, "bin", "loftd")
			paths := map[string]string{
				"beside": filepath.Join(prefix, "libexec", "loftd", "virtiofsd"),
				"local":  filepath.Join(prefix, "usr-local-libexec-loftd", "virtiofsd"),
				"debian": filepath.Join(prefix, "usr-lib-qemu", "virtiofsd"),
			}
			if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(exe, nil, 0o755); err != nil {
				t.Fatal(err)
			}
			for where, flavor := range map[string]string{"beside": tt.beside, "local": tt.local, "debian": tt.debian} {
				if flavor != "" {
					fakeVirtiofsd(t, paths[where], flavor == "rust")
				}
			}
			old := VirtiofsdPaths
			t.Cleanup(func() { VirtiofsdPaths = old })
			VirtiofsdPaths = []string{paths["local"], paths["debian"]}
			t.Setenv(parts.ExeEnv, exe)
			t.Setenv("PATH", t.TempDir())
			t.Setenv("XDG_DATA_HOME", t.TempDir())
			t.Setenv(VirtiofsdEnv, "")
			if tt.env {
				t.Setenv(VirtiofsdEnv, paths["debian"])
			}
			got, err := LocateVirtiofsd()
			if err != nil || got.Path != paths[tt.want] || got.Rule != tt.rule {
				t.Errorf("LocateVirtiofsd() = %+v, %v; want %s (%v)", got, err, paths[tt.want], tt.rule)
			}
		})
	}
}

// TestFindVirtiofsdFlavor: the parent's lookup says which flavor it found,
// for the plan to carry (the helper does not ask again).
func TestFindVirtiofsdFlavor(t *testing.T) {
	for _, tt := range []struct {
		rust bool
		want launch.VirtiofsdFlavor
	}{{true, launch.VirtiofsdRust}, {false, launch.VirtiofsdC}} {
		path := filepath.Join(t.TempDir(), "virtiofsd")
		fakeVirtiofsd(t, path, tt.rust)
		got, flavor, err := FindVirtiofsd(path)
		if err != nil || got != path || flavor != tt.want {
			t.Errorf("FindVirtiofsd(%s, rust %v) = %s, %q, %v; want %s, %q", path, tt.rust, got, flavor, err, path, tt.want)
		}
	}
}

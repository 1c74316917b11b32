package parts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFindOrder puts a fake part where each rule looks and checks that
// the earliest rule wins: override, next to the executable, the system,
// the XDG data directory.
func TestFindOrder(t *testing.T) {
	const name = "libfake.so.1"
	tests := []struct {
		name    string
		flag    bool     // pass the flag
		env     bool     // set the override variable
		present []string // which of beside, beside2, system, data hold the file
		xdgHome bool     // XDG_DATA_HOME set (else HOME/.local/share)
		want    string   // which one is found; "" for none
		rule    Rule
		why     string
	}{
		{"flag beats all", true, true, []string{"beside", "system", "data"}, true, "flag", Override, "--fake"},
		{"env beats beside", false, true, []string{"beside", "system", "data"}, true, "env", Override, "env LOFTD_FAKE"},
		{"beside beats system", false, false, []string{"beside", "beside2", "system", "data"}, true, "beside", Beside, "next to the executable"},
		{"second beside dir", false, false, []string{"beside2", "system", "data"}, true, "beside2", Beside, "next to the executable"},
		{"system beats data", false, false, []string{"system", "data"}, true, "system", System, "system"},
		{"XDG_DATA_HOME", false, false, []string{"data"}, true, "data", Data, "XDG data dir"},
		{"HOME/.local/share", false, false, []string{"data"}, false, "data", Data, "XDG data dir"},
		{"nothing", false, false, nil, true, "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			home := filepath.Join(root, "home")
			dataHome := filepath.Join(root, "xdg")
			data := filepath.Join(dataHome, "loftd", "lib")
			if !tt.xdgHome {
				data = filepath.Join(home, ".local", "share", "loftd", "lib")
			}
			dirs := map[string]string{
				"beside":  filepath.Join(root, "prefix", "lib", "loftd"),
				"beside2": filepath.Join(root, "prefix", "bin"),
				"system":  filepath.Join(root, "usr", "lib"),
				"data":    data,
			}
			paths := map[string]string{"flag": filepath.Join(root, "flag", name), "env": filepath.Join(root, "env", name)}
			for k, d := range dirs {
				paths[k] = filepath.Join(d, name)
			}
			write := func(p string) {
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write(paths["flag"])
			write(paths["env"])
			for _, k := range tt.present {
				write(paths[k])
			}
			// The executable is a symlink into the prefix: the beside rule
			// follows its real path.
			exe := filepath.Join(root, "prefix", "bin", "loftd")
			write(exe)
			link := filepath.Join(root, "link", "loftd")
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(exe, link); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"HOME": home}
			if tt.xdgHome {
				env["XDG_DATA_HOME"] = dataHome
			}
			if tt.env {
				env["LOFTD_FAKE"] = paths["env"]
			}
			t.Setenv(ExeEnv, link)
			l := Locator{Getenv: func(k string) string { return env[k] }, Executable: Executable}
			p := Part{
				Name: "fake", Env: "LOFTD_FAKE", Flag: "--fake", Files: []string{name},
				Beside: []string{"../lib/loftd", "."}, System: InDirs(dirs["system"]), DataDir: "lib",
			}
			flag := ""
			if tt.flag {
				flag = paths["flag"]
			}
			got, err := l.Find(p, flag)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), data) {
					t.Fatalf("Find = %v, %v; want an error naming %s and %s", got, err, name, data)
				}
				return
			}
			want := Found{Path: paths[tt.want], Rule: tt.rule, Why: tt.why}
			if err != nil || got != want {
				t.Errorf("Find = %+v, %v; want %+v", got, err, want)
			}
		})
	}
}

// TestFindOverrideMissing: an override that names a missing file is an
// error naming the variable, never a silent fallback to another copy.
func TestFindOverrideMissing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "libfake.so.1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l := Locator{Getenv: func(k string) string {
		if k == "LOFTD_FAKE" {
			return "/nonexistent/libfake.so.1"
		}
		return ""
	}}
	p := Part{Name: "fake", Env: "LOFTD_FAKE", Files: []string{"libfake.so.1"}, System: InDirs(dir)}
	if got, err := l.Find(p, ""); err == nil || !strings.Contains(err.Error(), "LOFTD_FAKE") {
		t.Errorf("Find with a missing override = %+v, %v; want an error naming LOFTD_FAKE", got, err)
	}
}

// TestExecutableInNamespace: inside the keep-id namespace /proc/self/exe
// reads as "/", so _LOFTD_EXE names loftd.
func TestExecutableInNamespace(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "loftd")
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(ExeEnv, exe)
	if got, err := Executable(); got != exe || err != nil {
		t.Errorf("Executable() with %s=%s = %q, %v", ExeEnv, exe, got, err)
	}
}

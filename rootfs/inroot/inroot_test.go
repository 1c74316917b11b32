package inroot

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteFilePlantedSymlinks writes loftd's two files into crafted roots
// whose names are symlinks to files outside the root, in absolute and
// relative form: the outside files stay byte-identical with their mode, and
// the data lands inside the root.
func TestWriteFilePlantedSymlinks(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, root, outside string)
		write string
	}{
		{"dir symlink absolute", func(t *testing.T, root, out string) {
			symlink(t, out, filepath.Join(root, ".loftd"))
		}, "/.loftd/guest-init"},
		{"dir symlink relative", func(t *testing.T, root, out string) {
			symlink(t, rel(t, root, out), filepath.Join(root, ".loftd"))
		}, "/.loftd/guest-init"},
		{"file symlink absolute", func(t *testing.T, root, out string) {
			mkdir(t, filepath.Join(root, ".loftd"))
			symlink(t, filepath.Join(out, "guest-init"), filepath.Join(root, ".loftd", "guest-init"))
		}, "/.loftd/guest-init"},
		{"file symlink relative", func(t *testing.T, root, out string) {
			mkdir(t, filepath.Join(root, ".loftd"))
			symlink(t, "../"+rel(t, root, filepath.Join(out, "guest-init")), filepath.Join(root, ".loftd", "guest-init"))
		}, "/.loftd/guest-init"},
		{"config symlink absolute", func(t *testing.T, root, out string) {
			symlink(t, filepath.Join(out, "guest-init"), filepath.Join(root, ".krun_config.json"))
		}, "/.krun_config.json"},
		{"config symlink relative dotdot", func(t *testing.T, root, out string) {
			symlink(t, "../../../../../../../../.."+filepath.Join(out, "guest-init"), filepath.Join(root, ".krun_config.json"))
		}, "/.krun_config.json"},
		{"dir is a file", func(t *testing.T, root, out string) {
			if err := os.WriteFile(filepath.Join(root, ".loftd"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "/.loftd/guest-init"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			victim := filepath.Join(outside, "guest-init")
			if err := os.WriteFile(victim, []byte("host file\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tt.plant(t, root, outside)
			if err := WriteFile(root, tt.write, strings.NewReader("loftd\n"), 0o755); err != nil {
				t.Fatalf("WriteFile(%s) = %v", tt.write, err)
			}
			if got, err := os.ReadFile(victim); err != nil || string(got) != "host file\n" {
				t.Errorf("outside file after WriteFile = %q, %v; want it unchanged", got, err)
			}
			if fi, err := os.Lstat(victim); err != nil || fi.Mode() != 0o600 {
				t.Errorf("outside file mode after WriteFile = %v, %v; want -rw-------", fi.Mode(), err)
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 1 {
				t.Errorf("outside dir holds %d entries after WriteFile, want 1", len(entries))
			}
			p := filepath.Join(root, tt.write)
			fi, err := os.Lstat(p)
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
				t.Fatalf("Lstat(%s) = %v, %v; want a regular file 0755", p, fi, err)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, []byte("loftd\n")) {
				t.Errorf("%s = %q, want %q", tt.write, got, "loftd\n")
			}
		})
	}
}

// TestWriteFileRefuses: what cannot be replaced safely is an error naming
// the path; nothing is written outside.
func TestWriteFileRefuses(t *testing.T) {
	root := t.TempDir()
	mkdir(t, filepath.Join(root, ".krun_config.json", "sub"))
	err := WriteFile(root, "/.krun_config.json", strings.NewReader("{}"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "/.krun_config.json") {
		t.Errorf("WriteFile over a non-empty directory = %v, want an error naming /.krun_config.json", err)
	}
	leftovers := 0
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if strings.Contains(p, ".tmp-") {
			leftovers++
		}
		return nil
	})
	if leftovers != 0 {
		t.Errorf("WriteFile left %d temporary files", leftovers)
	}
	for _, name := range []string{"/", "/../x", ""} {
		if err := WriteFile(root, name, strings.NewReader(""), 0o644); err == nil {
			t.Errorf("WriteFile(%q) = nil, want an error", name)
		}
	}
}

func TestExists(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mkdir(t, filepath.Join(root, "in"))
	if err := os.WriteFile(filepath.Join(root, "in", "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	symlink(t, filepath.Join(outside, "f"), filepath.Join(root, "abs"))
	symlink(t, "/in/f", filepath.Join(root, "inside"))
	for _, tt := range []struct {
		name string
		want bool
	}{{"/in/f", true}, {"/abs", false}, {"/inside", true}, {"/missing", false}} {
		if got, err := Exists(root, tt.name); err != nil || got != tt.want {
			t.Errorf("Exists(%q) = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func rel(t *testing.T, from, to string) string {
	t.Helper()
	r, err := filepath.Rel(from, to)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReadFileRemoveNoFollow: a status file the guest replaced by a symlink
// to a host file is neither read nor followed on removal.
func TestReadFileRemoveNoFollow(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	mkdir(t, filepath.Join(root, "d"))
	if err := os.WriteFile(filepath.Join(root, "d", "f"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	symlink(t, secret, filepath.Join(root, "d", "link"))
	if got, err := ReadFile(root, "/d/f", 3); err != nil || string(got) != "123" {
		t.Errorf("ReadFile(/d/f, 3) = %q, %v; want \"123\"", got, err)
	}
	if got, err := ReadFile(root, "/d/link", 10); err == nil {
		t.Errorf("ReadFile(/d/link) = %q, want an error (symlink)", got)
	}
	if _, err := ReadFile(root, "/d/missing", 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(/d/missing) error = %v, want fs.ErrNotExist", err)
	}
	for _, name := range []string{"/d/link", "/d/f", "/d/missing"} {
		if err := Remove(root, name); err != nil {
			t.Errorf("Remove(%q) = %v", name, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "d", "f")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Remove(/d/f): %v, want it gone", err)
	}
	if data, err := os.ReadFile(secret); err != nil || string(data) != "host" {
		t.Errorf("host file after Remove(/d/link) = %q, %v; want it untouched", data, err)
	}
}

// TestOpenNoLinks: Open from "/" reads a host path only when no component
// of it is a link (a directory or the file swapped for one by the guest).
func TestOpenNoLinks(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	mkdir(t, filepath.Join(dir, "d"))
	if err := os.WriteFile(filepath.Join(dir, "d", "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	symlink(t, secret, filepath.Join(dir, "d", "link"))
	symlink(t, outside, filepath.Join(dir, "dirlink"))
	symlink(t, "d", filepath.Join(dir, "rel"))
	tests := []struct {
		name string
		want string // "" = refused
	}{
		{filepath.Join(dir, "d", "f"), "data"},
		{filepath.Join(dir, "d", "link"), ""},
		{filepath.Join(dir, "dirlink", "secret"), ""},
		{filepath.Join(dir, "rel", "f"), ""},
	}
	for _, tt := range tests {
		f, err := Open("/", tt.name)
		if tt.want == "" {
			if err == nil {
				f.Close()
				t.Errorf("Open(/, %s) succeeded, want a refusal (a link on the way)", tt.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(/, %s) = %v", tt.name, err)
			continue
		}
		var b bytes.Buffer
		_, err = b.ReadFrom(f)
		f.Close()
		if err != nil || b.String() != tt.want {
			t.Errorf("Open(/, %s) read %q, %v; want %q", tt.name, b.String(), err, tt.want)
		}
	}
}

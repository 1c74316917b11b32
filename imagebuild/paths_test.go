package imagebuild

import (
	"os"
	"path/filepath"
	"testing"
)

// TestContainerfilePath: --file is resolved as docker build -f resolves
// it: absolute as it is, relative against the current directory.
func TestContainerfilePath(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, other} {
		if err := os.WriteFile(filepath.Join(d, "Containerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	for _, tt := range []struct{ in, want string }{
		{"Containerfile", filepath.Join(dir, "Containerfile")},
		{"./Containerfile", filepath.Join(dir, "Containerfile")},
		{filepath.Join(other, "Containerfile"), filepath.Join(other, "Containerfile")},
	} {
		if got, err := Containerfile(tt.in); err != nil || got != tt.want {
			t.Errorf("Containerfile(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"missing", other, "/nonexistent/Containerfile"} {
		if got, err := Containerfile(in); err == nil {
			t.Errorf("Containerfile(%q) = %q, want an error", in, got)
		}
	}
	if got, err := ContextDir("."); err != nil || got != dir {
		t.Errorf("ContextDir(\".\") = %q, %v; want %q", got, err, dir)
	}
}

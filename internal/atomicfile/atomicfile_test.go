package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name string
		old  []byte // nil: no file before
		data []byte
		perm os.FileMode
	}{
		{"new file", nil, []byte("plan\n"), 0o600},
		{"replaces", []byte("old content that is longer"), []byte("new"), 0o644},
		{"empty", []byte("x"), nil, 0o640},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		path := filepath.Join(dir, "f.json")
		if tt.old != nil {
			if err := os.WriteFile(path, tt.old, 0o666); err != nil {
				t.Fatal(err)
			}
		}
		if err := WriteFile(path, tt.data, tt.perm); err != nil {
			t.Fatalf("%s: WriteFile: %v", tt.name, err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != string(tt.data) {
			t.Errorf("%s: content = %q, %v; want %q", tt.name, got, err, tt.data)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != tt.perm {
			t.Errorf("%s: mode = %v, %v; want %v", tt.name, fi.Mode().Perm(), err, tt.perm)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("%s: directory holds %d entries, want only the file (no temporary left)", tt.name, len(ents))
		}
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent", "f")
	if err := WriteFile(path, []byte("x"), 0o600); err == nil {
		t.Errorf("WriteFile(%s) into a missing directory succeeded, want an error", path)
	}
}

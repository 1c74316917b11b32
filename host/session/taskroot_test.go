package session

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckRootfsDir: --rootfs may not hold the state directory or the
// workspace (/ holds both); such a root is a usage error naming the fix.
func TestCheckRootfsDir(t *testing.T) {
	base := t.TempDir()
	state, ws, root := filepath.Join(base, "state"), filepath.Join(base, "ws"), filepath.Join(base, "root")
	for _, d := range []string{state, ws, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(t.TempDir(), "link-to-base")
	if err := os.Symlink(base, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rootfs  string
		wantErr string // "" for accepted
		usage   bool
	}{
		{root, "", false},
		{"/", "contains the state directory", true},
		{base, "contains the state directory", true},
		{link, "contains the state directory", true},
		{state, "contains the state directory", true},
		{ws, "contains the workspace", true},
		{filepath.Join(base, "missing"), "pass an existing directory", false},
		{file, "not a directory", false},
	}
	for _, tt := range tests {
		got, err := checkRootfsDir(tt.rootfs, state, ws)
		if tt.wantErr == "" {
			if err != nil || got != root {
				t.Errorf("checkRootfsDir(%q) = %q, %v; want %q", tt.rootfs, got, err, root)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, ErrUsage) != tt.usage {
			t.Errorf("checkRootfsDir(%q) = %v; want an error with %q (usage error: %v)", tt.rootfs, err, tt.wantErr, tt.usage)
		}
	}
}

func TestWithin(t *testing.T) {
	for _, tt := range []struct {
		dir, p string
		want   bool
	}{
		{"/", "/a/b", true}, {"/a", "/a", true}, {"/a", "/a/b", true},
		{"/a", "/ab", false}, {"/a/b", "/a", false}, {"/a", "/..b", false},
	} {
		if got := within(tt.dir, tt.p); got != tt.want {
			t.Errorf("within(%q, %q) = %v, want %v", tt.dir, tt.p, got, tt.want)
		}
	}
}

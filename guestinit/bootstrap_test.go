package guestinit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/contract"
)

func TestBootstrap(t *testing.T) {
	tests := []struct {
		name       string
		script     string // "" : none on the share
		plantLinks bool
		wantStatus string
		wantLog    string
		wantStderr string
	}{
		{name: "no script: nothing runs, nothing is written"},
		{name: "success", script: "echo prepared; echo to-stderr >&2\n", wantStatus: "0\n", wantLog: "prepared\nto-stderr\n"},
		{name: "failure is said and recorded", script: "echo half; exit 3\n", wantStatus: "3\n", wantLog: "half\n", wantStderr: "failed with status 3"},
		{name: "links planted at the log and status are replaced, not followed", script: "echo ok\n", plantLinks: true, wantStatus: "0\n", wantLog: "ok\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(root, ".loftd"), 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.script != "" {
				if err := os.WriteFile(filepath.Join(root, contract.BootstrapPath), []byte(tt.script), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.plantLinks {
				for _, p := range []string{contract.BootstrapLogPath, contract.BootstrapStatusPath} {
					if err := os.Symlink(victim, filepath.Join(root, p)); err != nil {
						t.Fatal(err)
					}
				}
			}
			f := &fakeSystem{}
			sys := f.system(t)
			sys.SysRoot = root
			var stderr bytes.Buffer
			sys.Stderr = &stderr
			e := newEnter(sys, false, nil)
			if err := e.runBootstrap(); err != nil {
				t.Fatal(err)
			}
			read := func(p string) string {
				b, err := os.ReadFile(filepath.Join(root, p))
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				return string(b)
			}
			if got := read(contract.BootstrapStatusPath); got != tt.wantStatus {
				t.Errorf("status file = %q, want %q", got, tt.wantStatus)
			}
			if got := read(contract.BootstrapLogPath); got != tt.wantLog {
				t.Errorf("log = %q, want %q", got, tt.wantLog)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) || (tt.wantStderr == "" && stderr.Len() > 0) {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantStderr)
			}
			if b, _ := os.ReadFile(victim); string(b) != "untouched" {
				t.Errorf("a planted link was followed: victim = %q", b)
			}
		})
	}
}

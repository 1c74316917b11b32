package liveclient

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestParseDetachKeys(t *testing.T) {
	tests := []struct {
		in      string
		want    []byte
		wantErr bool
	}{
		{"ctrl-p,ctrl-q", []byte{0x10, 0x11}, false},
		{"ctrl-P,ctrl-Q", []byte{0x10, 0x11}, false},
		{"ctrl-[,a", []byte{0x1b, 'a'}, false},
		{"", nil, false},
		{"ctrl-1", nil, true},
		{"ctrl", nil, true},
		{"ab", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseDetachKeys(tt.in)
		if (err != nil) != tt.wantErr || !bytes.Equal(got, tt.want) {
			t.Errorf("ParseDetachKeys(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDetachFilter(t *testing.T) {
	keys := []byte{0x10, 0x11}
	tests := []struct {
		name     string
		writes   []string
		want     string
		detached bool
	}{
		{"plain", []string{"ls\r"}, "ls\r", false},
		{"detach", []string{"ab\x10\x11cd"}, "ab", true},
		{"split across writes", []string{"ab\x10", "\x11"}, "ab", true},
		{"partial then other", []string{"\x10x"}, "\x10x", false},
		{"ctrl-p twice then q", []string{"\x10\x10\x11"}, "\x10", true},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		f := &detachFilter{w: &out, keys: keys}
		var err error
		for _, w := range tt.writes {
			if _, err = f.Write([]byte(w)); err != nil {
				break
			}
		}
		if got := errors.Is(err, ErrDetached); got != tt.detached || out.String() != tt.want {
			t.Errorf("%s: passed %q, detached %v; want %q, %v", tt.name, out.String(), got, tt.want, tt.detached)
		}
	}
}

func TestShellCommand(t *testing.T) {
	tests := []struct {
		argv    []string
		workdir string
		want    string
	}{
		{nil, "", ""},
		{[]string{"echo", "a b", "it's"}, "", `exec 'echo' 'a b' 'it'\''s'`},
		{[]string{"pwd"}, "/tmp/x y", `cd -- '/tmp/x y' || exit 125; exec 'pwd'`},
		{nil, "/tmp", `cd -- '/tmp' || exit 125; exec "${SHELL:-/bin/sh}" -l`},
	}
	for _, tt := range tests {
		if got := ShellCommand(tt.argv, tt.workdir); got != tt.want {
			t.Errorf("ShellCommand(%q, %q) = %q, want %q", tt.argv, tt.workdir, got, tt.want)
		}
	}
}

// The keys are made once and then kept; authorized_keys carries only keys
// (the user's comments and junk lines are dropped), each once.
func TestKeys(t *testing.T) {
	ws := t.TempDir()
	k1, err := EnsureKeys(ws, "loftd-x")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := EnsureKeys(ws, "loftd-x")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1.HostPEM, k2.HostPEM) || !bytes.Equal(k1.ClientPEM, k2.ClientPEM) {
		t.Error("EnsureKeys made new keys on the second call")
	}
	if bytes.Equal(k1.HostPEM, k1.ClientPEM) {
		t.Error("host and client keys are the same")
	}
	for _, f := range []string{hostKeyFile, clientKeyFile} {
		fi, err := os.Stat(filepath.Join(ws, "ssh", f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, fi.Mode())
		}
	}
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	user := string(ssh.MarshalAuthorizedKey(k2.Host.PublicKey()))
	os.WriteFile(filepath.Join(home, ".ssh", "id.pub"), []byte("# c\n"+strings.TrimSpace(user)+" me@host\nnot a key\n"+user), 0o644)
	got := string(k1.AuthorizedKeys(home, ""))
	want := string(ssh.MarshalAuthorizedKey(k1.Client.PublicKey())) + user
	if got != want {
		t.Errorf("AuthorizedKeys =\n%s\nwant\n%s", got, want)
	}
}

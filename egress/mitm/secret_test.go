package mitm

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestNewSecret(t *testing.T) {
	tests := []struct {
		name, value string
		hosts       []string
		wantErr     string // "" for none
	}{
		{"GITHUB_TOKEN", "ghp_x\n", []string{"api.github.com", "*.GitHub.com."}, ""},
		{"1BAD", "v", []string{"a.example"}, "not an environment variable name"},
		{"EMPTY", "\n", []string{"a.example"}, "empty"},
		{"SPLIT", "a\r\nX-Evil: 1", []string{"a.example"}, "control byte"},
		{"NOHOST", "v", nil, "no host"},
		{"BADHOST", "v", []string{"a/b"}, "not a host name"},
		{"MIDSTAR", "v", []string{"a.*.example"}, "not a host name"},
	}
	for _, tt := range tests {
		s, err := NewSecret(tt.name, []byte(tt.value), tt.hosts)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewSecret(%q) = %v, want an error with %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("NewSecret(%q): %v", tt.name, err)
		}
		if string(s.Value) != "ghp_x" || strings.Contains(s.Placeholder, "ghp_x") || !strings.HasPrefix(s.Placeholder, "loftd-placeholder-") {
			t.Errorf("NewSecret(%q) = value %q placeholder %q", tt.name, s.Value, s.Placeholder)
		}
		if strings.Contains(s.String(), "ghp_x") {
			t.Errorf("String() shows the value: %s", s)
		}
		other, _ := NewSecret(tt.name, []byte(tt.value), tt.hosts)
		if other.Placeholder == s.Placeholder {
			t.Error("two secrets got the same placeholder")
		}
		for name, want := range map[string]bool{
			"api.github.com": true, "API.GITHUB.COM.": true, "uploads.github.com": true,
			"github.com": false, "evilgithub.com": false, "api.github.com.evil": false, "*.github.com": false,
		} {
			if got := s.AllowedTo(name); got != want {
				t.Errorf("AllowedTo(%q) = %v, want %v", name, got, want)
			}
		}
	}
}

// TestScanCopy: a placeholder is caught whole or split across reads, and
// nothing of the read that completes it is written.
func TestScanCopy(t *testing.T) {
	s, err := NewSecret("T", []byte("v"), []string{"a.example"})
	if err != nil {
		t.Fatal(err)
	}
	ph := s.Placeholder
	for _, split := range []int{0, 1, len(ph) / 2, len(ph) - 1} {
		src := &chunks{parts: []string{"hello " + ph[:split], ph[split:] + " tail"}}
		var dst bytes.Buffer
		found, err := scanCopy(&dst, src, []Secret{s})
		if err != nil || found == nil || found.Name != "T" {
			t.Errorf("split at %d: scanCopy = %v, %v; want secret T", split, found, err)
		}
		if strings.Contains(dst.String(), ph) || strings.Contains(dst.String(), "tail") {
			t.Errorf("split at %d: wrote %q", split, dst.String())
		}
	}
	var dst bytes.Buffer
	if found, err := scanCopy(&dst, &chunks{parts: []string{"no ", "secret"}}, []Secret{s}); found != nil || err != nil || dst.String() != "no secret" {
		t.Errorf("clean stream: scanCopy = %v, %v, wrote %q", found, err, dst.String())
	}
}

// chunks returns one part per Read, as a network read would.
type chunks struct{ parts []string }

func (c *chunks) Read(b []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.parts[0])
	c.parts = c.parts[1:]
	return n, nil
}

package session

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFirstLineWith: the first console line with the guest kernel's disk
// I/O error is found and quoted without its timestamp; other errors (not a
// virtio disk) and a missing log are no finding.
func TestFirstLineWith(t *testing.T) {
	tests := []struct {
		console, want string
	}{
		{"[    0.99] rtc_cmos: probe failed\n[    4.43] I/O error, dev vda, sector 46 op 0x1:(WRITE)\n[    4.44] I/O error, dev vdb, sector 1\n",
			"I/O error, dev vda, sector 46 op 0x1:(WRITE)"},
		{"I/O error, dev vdb, sector 9\n", "I/O error, dev vdb, sector 9"},
		{"[    1.00] I/O error, dev sda, sector 1\n[    1.01] EXT4-fs error\n", ""},
		{"", ""},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		p := filepath.Join(dir, "console.log"+string(rune('0'+i)))
		if err := os.WriteFile(p, []byte(tt.console), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := firstLineWith(p, guestIOError, 1<<20); got != tt.want {
			t.Errorf("firstLineWith(%q) = %q, want %q", tt.console, got, tt.want)
		}
	}
	if got := firstLineWith(filepath.Join(dir, "missing"), guestIOError, 1<<20); got != "" {
		t.Errorf("firstLineWith(missing file) = %q, want \"\"", got)
	}
}

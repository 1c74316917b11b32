package session

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// The owner's id as root: --uid, else SUDO_UID (not 0, not out of
// range), else the workspace's owner; the guest's is the owner's, but 1000
// for root.
func TestHostAndGuestID(t *testing.T) {
	tests := []struct {
		name        string
		flag        int
		sudo        string
		owner       int
		host, guest int
	}{
		{"--uid wins", 1234, "1000", 0, 1234, 1234},
		{"--uid 0 is root, dev stays 1000", 0, "1000", 1000, 0, 1000},
		{"SUDO_UID", -1, "1001", 0, 1001, 1001},
		{"SUDO_UID=0 says nothing", -1, "0", 1002, 1002, 1002},
		{"SUDO_UID garbage", -1, "x", 1002, 1002, 1002},
		{"SUDO_UID out of range", -1, "4294967296", 1002, 1002, 1002},
		{"workspace owner", -1, "", 1003, 1003, 1003},
		{"root-owned workspace", -1, "", 0, 0, 1000},
	}
	for _, tt := range tests {
		t.Setenv("SUDO_UID", tt.sudo)
		host := hostID(tt.flag, "SUDO_UID", tt.owner)
		if host != tt.host || guestID(host) != tt.guest {
			t.Errorf("%s: host %d guest %d, want %d and %d", tt.name, host, guestID(host), tt.host, tt.guest)
		}
	}
}

// checkEnter: the search bit of the class the ids fall in decides.
func TestCheckEnter(t *testing.T) {
	testenv.RequireRoot(t)
	tests := []struct {
		mode     os.FileMode
		uid, gid int // the directory's owner
		ok       bool
	}{
		{0o700, 1000, 1000, true},
		{0o700, 1234, 1234, false},
		{0o070, 1234, 1000, true},
		{0o750, 1234, 1234, false},
		{0o701, 1234, 1234, true},
		{0o601, 1000, 1000, false}, // the owner's bits, not others'
		{0o700, 0, 0, false},
	}
	for _, tt := range tests {
		dir := filepath.Join(t.TempDir(), "ws")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, tt.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, tt.uid, tt.gid); err != nil {
			t.Fatal(err)
		}
		err := checkEnter(dir, 1000, 1000)
		if (err == nil) != tt.ok {
			t.Errorf("checkEnter(%04o %d:%d, as 1000:1000) = %v, want ok %v", tt.mode, tt.uid, tt.gid, err, tt.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "--uid")) {
			t.Errorf("checkEnter error %q does not name the directory and the fix", err)
		}
	}
}

// As root, --vmm krun cannot serve id-mapped shares.
func TestPickVMMForIDMappedShares(t *testing.T) {
	if _, _, err := pickVMMFor("krun", true); err == nil || !strings.Contains(err.Error(), "--vmm qemu") {
		t.Errorf("pickVMMFor(krun, id-mapped) = %v, want a refusal naming --vmm qemu", err)
	}
}

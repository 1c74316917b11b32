package guestinit

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestEnsureOwnerModeLeavesInodeAlone: when owner and mode are already
// right the inode is not touched (its ctime stays), so a boot does not
// dirty the persistent disks; what differs is changed.
func TestEnsureOwnerModeLeavesInodeAlone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o775|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	ctime := func() syscall.Timespec {
		var st syscall.Stat_t
		if err := syscall.Lstat(dir, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ctim
	}
	uid, gid := os.Getuid(), os.Getgid()
	before := ctime()
	time.Sleep(20 * time.Millisecond) // past the filesystem's timestamp granularity
	if err := ensureOwnerMode(dir, uid, gid, 0o775|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if after := ctime(); after != before {
		t.Errorf("ensureOwnerMode(%s) with owner and mode already right changed its ctime %v → %v", dir, before, after)
	}
	if err := ensureOwnerMode(dir, uid, gid, 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(dir); err != nil || fi.Mode().Perm() != 0o700 || fi.Mode()&os.ModeSticky != 0 {
		t.Errorf("ensureOwnerMode(%s, 0700): mode %v, %v; want 0700 without sticky", dir, fi.Mode(), err)
	}
}

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

// TestSameFile: writeOwned skips a file only when it is a regular file
// (not a symlink to one) with the content, permission bits and owner it
// would write.
func TestSameFile(t *testing.T) {
	uid, gid := os.Getuid(), os.Getgid()
	const content = "a = 1\n"
	for _, tt := range []struct {
		name    string
		setup   func(t *testing.T, p string)
		content string
		mode    os.FileMode
		want    bool
	}{
		{"same", func(t *testing.T, p string) { write(t, p, content, 0o644) }, content, 0o644, true},
		{"empty and same", func(t *testing.T, p string) { write(t, p, "", 0o644) }, "", 0o644, true},
		{"missing", func(t *testing.T, p string) {}, content, 0o644, false},
		{"other content, same size", func(t *testing.T, p string) { write(t, p, "a = 2\n", 0o644) }, content, 0o644, false},
		{"longer", func(t *testing.T, p string) { write(t, p, content+"b = 2\n", 0o644) }, content, 0o644, false},
		{"shorter", func(t *testing.T, p string) { write(t, p, "a", 0o644) }, content, 0o644, false},
		{"other mode", func(t *testing.T, p string) { write(t, p, content, 0o600) }, content, 0o644, false},
		{"symlink to the same", func(t *testing.T, p string) {
			write(t, p+".real", content, 0o644)
			if err := os.Symlink(p+".real", p); err != nil {
				t.Fatal(err)
			}
		}, content, 0o644, false},
		{"directory", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "", 0o644, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f.conf")
			tt.setup(t, p)
			if got := sameFile(p, tt.content, tt.mode, uid, gid); got != tt.want {
				t.Errorf("sameFile = %v; want %v", got, tt.want)
			}
		})
	}
	p := filepath.Join(t.TempDir(), "f.conf")
	write(t, p, content, 0o644)
	if sameFile(p, content, 0o644, uid+1, gid) || sameFile(p, content, 0o644, uid, gid+1) {
		t.Error("sameFile ignores the owner")
	}
}

func write(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

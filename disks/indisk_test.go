package disks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// TestInDiskSnapshots: save, change, restore and remove on a real btrfs
// (a loop mount made here, as the maintenance VM mounts the disk's top
// level); the restored data is the new default subvolume's.
func TestInDiskSnapshots(t *testing.T) {
	top := testenv.Btrfs(t)
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(top, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kept", "saved\n")
	if err := SaveInDisk(top, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := SaveInDisk(top, "s1"); err == nil {
		t.Error("SaveInDisk() over an existing name succeeded")
	}
	write("installed-after", "later\n")
	if err := RestoreInDisk(top, "s1"); err != nil {
		t.Fatal(err)
	}
	act, err := inDisk{top}.active()
	if err != nil || !strings.HasPrefix(act, ".active-") {
		t.Fatalf("active after restore = %q, %v", act, err)
	}
	view := filepath.Join(top, InDiskDir, act)
	if b, err := os.ReadFile(filepath.Join(view, "kept")); err != nil || string(b) != "saved\n" {
		t.Errorf("restored kept = %q, %v", b, err)
	}
	for _, p := range []string{filepath.Join(view, "installed-after"), filepath.Join(top, "installed-after"), filepath.Join(top, "kept")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s after restore: %v, want it gone", p, err)
		}
	}
	// A save now snapshots the restored default; a second restore drops
	// the first restore's subvolume.
	if err := os.WriteFile(filepath.Join(view, "second"), []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SaveInDisk(top, "s2"); err != nil {
		t.Fatal(err)
	}
	if err := RestoreInDisk(top, "s2"); err != nil {
		t.Fatal(err)
	}
	act2, _ := inDisk{top}.active()
	if _, err := os.Stat(filepath.Join(top, InDiskDir, act2, "second")); err != nil || act2 == act {
		t.Errorf("second restore: active %q (was %q), second: %v", act2, act, err)
	}
	if _, err := os.Lstat(view); !os.IsNotExist(err) {
		t.Errorf("the first restore's subvolume survived the second: %v", err)
	}
	if err := RemoveInDisk(top, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveInDisk(top, "s1"); err == nil {
		t.Error("RemoveInDisk() of a removed snapshot succeeded")
	}
}

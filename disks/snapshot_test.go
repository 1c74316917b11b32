package disks

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// TestSnapshotSaveRestore saves a disk, changes it, restores it, on a
// btrfs (reflink) and on the machine's temporary directory (ext4 here: a
// sparse copy).
func TestSnapshotSaveRestore(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  func(t *testing.T) string
		want SnapshotMethod
	}{
		{"btrfs reflink", func(t *testing.T) string { return testenv.Btrfs(t) }, Reflink},
		{"sparse copy", func(t *testing.T) string { return t.TempDir() }, SparseCopy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.RequireCommand(t, "mkfs.btrfs", "btrfs-progs")
			dir := tc.dir(t)
			if tc.want == SparseCopy && probeReflink(t, dir) {
				testenv.Missing(t, "%s has reflinks: no sparse-copy fallback to test there", dir)
			}
			disk := filepath.Join(dir, "nix.raw")
			if err := Create(disk, "loftd-nix", 256<<20); err != nil {
				t.Fatal(err)
			}
			mark := func(s string) {
				f, err := os.OpenFile(disk, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				// The last block: past anything mkfs wrote.
				if _, err := f.WriteAt([]byte(s), 256<<20-4096); err != nil {
					t.Fatal(err)
				}
			}
			read := func() string {
				f, err := os.Open(disk)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				b := make([]byte, 6)
				f.ReadAt(b, 256<<20-4096)
				return string(bytes.TrimRight(b, "\x00"))
			}
			mark("before")
			snaps := filepath.Join(dir, "snapshots", "nix")
			how, err := SaveSnapshot(disk, snaps, "s1")
			if err != nil || how != tc.want {
				t.Fatalf("SaveSnapshot() = %v, %v; want %v", how, err, tc.want)
			}
			if _, err := SaveSnapshot(disk, snaps, "s1"); err == nil {
				t.Errorf("SaveSnapshot() over an existing name succeeded")
			}
			mark("after!")
			if how, err := RestoreSnapshot(disk, snaps, "s1"); err != nil || how != tc.want {
				t.Fatalf("RestoreSnapshot() = %v, %v; want %v", how, err, tc.want)
			}
			if got := read(); got != "before" {
				t.Errorf("disk after restore reads %q, want %q", got, "before")
			}
			if err := Validate(disk, 256<<20); err != nil {
				t.Errorf("restored disk: %v", err)
			}
			list, err := ListSnapshots(snaps)
			if err != nil || len(list) != 1 || list[0].Name != "s1" {
				t.Errorf("ListSnapshots() = %v, %v; want s1", list, err)
			}
			if err := RemoveSnapshot(snaps, "s1"); err != nil {
				t.Fatal(err)
			}
			if _, err := RestoreSnapshot(disk, snaps, "s1"); !errors.Is(err, ErrNoSnapshot) {
				t.Errorf("RestoreSnapshot() of a removed one = %v, want ErrNoSnapshot", err)
			}
		})
	}
}

func probeReflink(t *testing.T, dir string) bool {
	a, err := os.Create(filepath.Join(dir, "probe-a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.WriteString("x")
	b, err := os.Create(filepath.Join(dir, "probe-b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	how, err := cloneOrCopy(b, a, 1)
	return err == nil && how == Reflink
}

func TestSnapshotName(t *testing.T) {
	for name, ok := range map[string]bool{"s1": true, "2026-12-06_a.b": true, "": false, ".hidden": false, "a/b": false, "../x": false, "a b": false, "a\n": false,
		strings.Repeat("x", 64): true, strings.Repeat("x", 65): false, "-a": false, "_a": false, "a-": true, "Z9": true, "é": false, "a\x00": false} {
		if err := CheckSnapshotName(name); (err == nil) != ok {
			t.Errorf("CheckSnapshotName(%q) = %v, want ok %v", name, err, ok)
		}
	}
}

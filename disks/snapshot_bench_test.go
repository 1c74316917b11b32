package disks

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// BenchmarkSnapshot2GiB: save and restore of a disk with 2 GiB of data
// extents, by reflink (a btrfs loop mount) and by sparse copy (the
// machine's temporary directory). One op is one save and one restore.
func BenchmarkSnapshot2GiB(b *testing.B) {
	for _, tc := range []struct {
		name string
		dir  func(b *testing.B) string
	}{
		{"reflink", func(b *testing.B) string { return testenv.BtrfsOfSize(b, 12<<30) }},
		{"sparse-copy", func(b *testing.B) string { return b.TempDir() }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			testenv.RequireCommand(b, "mkfs.btrfs", "btrfs-progs")
			dir := tc.dir(b)
			disk := filepath.Join(dir, "nix.raw")
			if err := Create(disk, "loftd-nix", 8<<30); err != nil {
				b.Fatal(err)
			}
			fillData(b, disk, 256<<20, 2<<30)
			snaps := filepath.Join(dir, "snapshots")
			for i := 0; b.Loop(); i++ {
				name := "s" + strconv.Itoa(i)
				if _, err := SaveSnapshot(disk, snaps, name); err != nil {
					b.Fatal(err)
				}
				if _, err := RestoreSnapshot(disk, snaps, name); err != nil {
					b.Fatal(err)
				}
				if err := RemoveSnapshot(snaps, name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fillData writes n bytes of incompressible data at off (past what mkfs
// wrote; the superblock stays valid, which is all Validate reads).
func fillData(b *testing.B, disk string, off, n int64) {
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	rand.Read(buf)
	for done := int64(0); done < n; done += int64(len(buf)) {
		if _, err := f.WriteAt(buf, off+done); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
}

package disks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestGrowRefusesShrinkAndSameSize(t *testing.T) {
	p := newDisk(t, 2*MinSize)
	before := fingerprint(t, p)
	tests := []struct {
		size     int64
		want     error
		notWant  error
		mentions []string
	}{
		{MinSize, ErrShrink, ErrSameSize, []string{"128 MiB", "256 MiB"}},
		{2 * MinSize, ErrSameSize, ErrShrink, []string{"256 MiB"}},
	}
	for _, tt := range tests {
		err := Grow(p, tt.size)
		if !errors.Is(err, tt.want) || errors.Is(err, tt.notWant) {
			t.Errorf("Grow(%q, %s) = %v, want %v (and not %v)", p, FormatSize(tt.size), err, tt.want, tt.notWant)
			continue
		}
		for _, m := range tt.mentions {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("Grow(%q, %s) = %q, want it to mention %s", p, FormatSize(tt.size), err, m)
			}
		}
	}
	if after := fingerprint(t, p); after != before {
		t.Errorf("refused Grow changed %s: before %s, after %s", p, before, after)
	}
}

func TestGrow(t *testing.T) {
	p := newDisk(t, MinSize)
	fsid, _ := superblock(t, p)
	if err := Grow(p, DefaultSize); err != nil {
		t.Fatalf("Grow(%q, %s) = %v", p, FormatSize(DefaultSize), err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != DefaultSize {
		t.Errorf("size after Grow = %s, want %s", FormatSize(st.Size()), FormatSize(DefaultSize))
	}
	if alloc := st.Sys().(*syscall.Stat_t).Blocks * 512; alloc >= 16*MiB {
		t.Errorf("grown disk allocates %s, want < 16 MiB (still sparse)", FormatSize(alloc))
	}
	if err := Validate(p, DefaultSize); err != nil {
		t.Errorf("Validate(%q, %s) after Grow = %v", p, FormatSize(DefaultSize), err)
	}
	if got, _ := superblock(t, p); got != fsid {
		t.Errorf("Grow changed the filesystem id")
	}
}

// The guest half of a resize: after the host grew the file, the mounted
// filesystem grows to fill the device.
func TestGrowFilesystem(t *testing.T) {
	testenv.RequireRoot(t)
	p := newDisk(t, 256*MiB)
	if err := Grow(p, 2*GiB); err != nil {
		t.Fatal(err)
	}
	mnt := testenv.Loop(t, p)
	before := fsBytes(t, mnt)
	if before > 300*MiB {
		t.Fatalf("filesystem is %s before growing, want about 256 MiB", FormatSize(before))
	}
	if err := GrowFilesystem(mnt); err != nil {
		t.Fatalf("GrowFilesystem(%q) = %v", mnt, err)
	}
	if after := fsBytes(t, mnt); after < 1900*MiB {
		t.Errorf("filesystem is %d bytes after GrowFilesystem, want about 2 GiB (was %d)", after, before)
	}
	// Growing again is a no-op, not an error: a resize VM may be re-run.
	if err := GrowFilesystem(mnt); err != nil {
		t.Errorf("second GrowFilesystem(%q) = %v, want nil", mnt, err)
	}
}

func fsBytes(t *testing.T, mnt string) int64 {
	t.Helper()
	var s unix.Statfs_t
	if err := unix.Statfs(mnt, &s); err != nil {
		t.Fatal(err)
	}
	return int64(s.Blocks) * s.Bsize
}

func TestGrowFilesystemNotBtrfs(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
		if err := GrowFilesystem(dir); err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("GrowFilesystem(%q) = %v, want an error naming it", dir, err)
		}
	}
}

func TestReset(t *testing.T) {
	requireMkfs(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		make func(p string)
	}{
		{"absent", func(string) {}},
		{"old disk", func(p string) {
			if err := Create(p, "OLD", DefaultSize); err != nil {
				t.Fatal(err)
			}
		}},
		{"not btrfs", func(p string) { write(t, p, []byte("junk")) }},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, tt.name+".raw")
		tt.make(p)
		var oldID string
		if _, err := os.Stat(p); err == nil && Validate(p, 0) == nil {
			oldID, _ = superblock(t, p)
		}
		if err := Reset(p, "LOFTD_NIX", MinSize); err != nil {
			t.Errorf("Reset(%s) = %v", tt.name, err)
			continue
		}
		if err := Validate(p, MinSize); err != nil {
			t.Errorf("Validate after Reset(%s) = %v", tt.name, err)
		}
		st, _ := os.Stat(p)
		id, label := superblock(t, p)
		if st.Size() != MinSize || label != "LOFTD_NIX" || id == oldID {
			t.Errorf("after Reset(%s): size %s, label %q, new fsid %v; want %s, LOFTD_NIX, true",
				tt.name, FormatSize(st.Size()), label, id != oldID, FormatSize(MinSize))
		}
	}
	if got := leftovers(t, dir); got != nil {
		t.Errorf("temporary files left: %q", got)
	}
}

func TestResetRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	inner := filepath.Join(dir, "d.raw", "keep")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target")
	write(t, target, []byte("keep me"))
	if err := os.Symlink(target, filepath.Join(dir, "s.raw")); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "e.raw")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"d.raw", "s.raw", "e.raw"} {
		p := filepath.Join(dir, name)
		before := state(t, p)
		if err := Reset(p, "L", MinSize); !errors.Is(err, ErrNotRegular) {
			t.Errorf("Reset(%q) = %v, want %v", p, err, ErrNotRegular)
		}
		if after := state(t, p); after != before {
			t.Errorf("Reset changed %s: %s, was %s", p, after, before)
		}
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "keep me" {
		t.Errorf("symlink target = %q, %v; want %q", b, err, "keep me")
	}
	if _, err := os.Stat(inner); err != nil {
		t.Errorf("directory content gone: %v", err)
	}
}

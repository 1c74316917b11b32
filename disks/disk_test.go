package disks

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Superblock fields, read straight from the file so the tests do not trust
// the code under test: fsid (16 bytes at 0x10020) and label (256 at 0x1012b).
func superblock(t *testing.T, path string) (fsid, label string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, 4096)
	if _, err := f.ReadAt(sb, 0x10000); err != nil {
		t.Fatal(err)
	}
	if m := string(sb[0x40:0x48]); m != btrfsMagic {
		t.Fatalf("%s: magic at 0x10040 = %q, want %q", path, m, btrfsMagic)
	}
	return string(sb[0x20:0x30]), string(bytes.TrimRight(sb[0x12b:0x12b+256], "\x00"))
}

func TestCreateIsSparseBtrfs(t *testing.T) {
	p := newDisk(t, DefaultSize)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != DefaultSize {
		t.Errorf("size of %s = %d, want %d", p, st.Size(), DefaultSize)
	}
	if alloc := st.Sys().(*syscall.Stat_t).Blocks * 512; alloc >= 16*MiB {
		t.Errorf("%s allocates %s on disk, want < 16 MiB (sparse)", p, FormatSize(alloc))
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode of %s = %v, want 0600", p, perm)
	}
	if _, label := superblock(t, p); label != "LOFTD_TEST" {
		t.Errorf("label of %s = %q, want LOFTD_TEST", p, label)
	}
	if err := Validate(p, DefaultSize); err != nil {
		t.Errorf("Validate(%q) = %v, want nil", p, err)
	}
	if got := leftovers(t, filepath.Dir(p)); got != nil {
		t.Errorf("temporary files left: %q", got)
	}
}

func TestCreateRefusesSmallSize(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nix.raw")
	if err := Create(p, "L", MinSize-MiB); err == nil {
		t.Errorf("Create(%q, %s) = nil, want an error", p, FormatSize(MinSize-MiB))
	}
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat(%q) = %v, want not exist", p, err)
	}
}

// Things that are not disks, made in dir; each must be refused and kept.
var notDisks = []struct {
	name string
	make func(t *testing.T, p string)
	want error
}{
	{"text file", func(t *testing.T, p string) { write(t, p, []byte("precious data\n")) }, ErrNotBtrfs},
	{"empty file", func(t *testing.T, p string) { write(t, p, nil) }, ErrNotBtrfs},
	{"random 1 MiB", func(t *testing.T, p string) {
		b := make([]byte, MiB)
		rand.Read(b)
		write(t, p, b)
	}, ErrNotBtrfs},
	{"sparse 256 MiB of zeros", func(t *testing.T, p string) {
		write(t, p, nil)
		if err := os.Truncate(p, 256*MiB); err != nil {
			t.Fatal(err)
		}
	}, ErrNotBtrfs},
	{"btrfs magic at the wrong offset", func(t *testing.T, p string) {
		b := make([]byte, MiB)
		copy(b[0x10000:], btrfsMagic) // right magic, wrong offset
		write(t, p, b)
	}, ErrNotBtrfs},
	{"directory", func(t *testing.T, p string) {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}, ErrNotRegular},
	{"named pipe", func(t *testing.T, p string) {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}, ErrNotRegular},
}

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// state describes what is at p, to prove it untouched.
func state(t *testing.T, p string) string {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Mode().IsRegular() {
		return st.Mode().String()
	}
	return st.Mode().String() + " " + fingerprint(t, p)
}

func TestNotADiskIsRefusedAndKept(t *testing.T) {
	requireMkfs(t)
	for _, tt := range notDisks {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "nix.raw")
			tt.make(t, p)
			before := state(t, p)
			if err := Validate(p, 0); !errors.Is(err, tt.want) {
				t.Errorf("Validate(%q) = %v, want %v", p, err, tt.want)
			}
			created, err := Ensure(p, "L", MinSize)
			if !errors.Is(err, tt.want) || created {
				t.Errorf("Ensure(%q) = %v, %v; want false, %v", p, created, err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "prepare disk "+p+": ") {
				t.Errorf("Ensure(%q) error %q does not name the disk", p, err)
			}
			if err := Grow(p, 2*GiB); !errors.Is(err, tt.want) {
				t.Errorf("Grow(%q) = %v, want %v", p, err, tt.want)
			}
			if err := Create(p, "L", MinSize); !errors.Is(err, fs.ErrExist) {
				t.Errorf("Create(%q) = %v, want %v", p, err, fs.ErrExist)
			}
			if after := state(t, p); after != before {
				t.Errorf("%s changed: before %s, after %s", p, before, after)
			}
		})
	}
}

func TestNotBtrfsMessage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nix.raw")
	write(t, p, []byte("x"))
	_, err := Ensure(p, "L", MinSize)
	want := "prepare disk " + p + ": not a btrfs image (refusing to overwrite; move it away, or for the nix disk run loftd reset-nix --force)"
	if err == nil || err.Error() != want {
		t.Errorf("Ensure(%q) = %v, want %s", p, err, want)
	}
}

func TestCreateRefusesExistingDisk(t *testing.T) {
	p := newDisk(t, MinSize)
	before := fingerprint(t, p)
	if err := Create(p, "OTHER", MinSize); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create(%q) over a disk = %v, want %v", p, err, fs.ErrExist)
	}
	if after := fingerprint(t, p); after != before {
		t.Errorf("%s changed: before %s, after %s", p, before, after)
	}
}

// A symlink is refused even when it points at a valid disk: a disk is only
// ever the file itself, so no link can redirect a reformat or a resize.
func TestSymlinkRefused(t *testing.T) {
	target := newDisk(t, MinSize)
	before := fingerprint(t, target)
	for _, dest := range []string{target, "/nonexistent/nix.raw"} {
		p := filepath.Join(t.TempDir(), "link.raw")
		if err := os.Symlink(dest, p); err != nil {
			t.Fatal(err)
		}
		if err := Validate(p, 0); !errors.Is(err, ErrNotRegular) {
			t.Errorf("Validate(symlink to %s) = %v, want %v", dest, err, ErrNotRegular)
		}
		if created, err := Ensure(p, "L", MinSize); !errors.Is(err, ErrNotRegular) || created {
			t.Errorf("Ensure(symlink to %s) = %v, %v; want false, %v", dest, created, err, ErrNotRegular)
		}
		if err := Grow(p, GiB); !errors.Is(err, ErrNotRegular) {
			t.Errorf("Grow(symlink to %s) = %v, want %v", dest, err, ErrNotRegular)
		}
		if err := Reset(p, "L", MinSize); !errors.Is(err, ErrNotRegular) {
			t.Errorf("Reset(symlink to %s) = %v, want %v", dest, err, ErrNotRegular)
		}
		if err := Create(p, "L", MinSize); !errors.Is(err, fs.ErrExist) {
			t.Errorf("Create(symlink to %s) = %v, want %v", dest, err, fs.ErrExist)
		}
		if got, err := os.Readlink(p); err != nil || got != dest {
			t.Errorf("Readlink(%q) = %q, %v; want %q", p, got, err, dest)
		}
	}
	if after := fingerprint(t, target); after != before {
		t.Errorf("symlink target %s changed: before %s, after %s", target, before, after)
	}
}

func TestEnsure(t *testing.T) {
	requireMkfs(t)
	p := filepath.Join(t.TempDir(), "containers.raw")
	if created, err := Ensure(p, "LOFTD_CONTAINERS", MinSize); err != nil || !created {
		t.Fatalf("Ensure(%q) on no file = %v, %v; want true, nil", p, created, err)
	}
	if _, label := superblock(t, p); label != "LOFTD_CONTAINERS" {
		t.Errorf("label = %q, want LOFTD_CONTAINERS", label)
	}
	before := fingerprint(t, p)
	if created, err := Ensure(p, "LOFTD_CONTAINERS", MinSize); err != nil || created {
		t.Errorf("Ensure(%q) on a disk = %v, %v; want false, nil", p, created, err)
	}
	if after := fingerprint(t, p); after != before {
		t.Errorf("Ensure changed an existing disk: before %s, after %s", before, after)
	}
	// A disk smaller than asked for is reported last, as ErrTooSmall only.
	created, err := Ensure(p, "LOFTD_CONTAINERS", 2*MinSize)
	if !errors.Is(err, ErrTooSmall) || errors.Is(err, ErrNotBtrfs) || created {
		t.Errorf("Ensure(%q, %s) = %v, %v; want false, %v", p, FormatSize(2*MinSize), created, err, ErrTooSmall)
	}
	if err := Validate(p, 2*MinSize); !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "resize --target containers --size 256M") {
		t.Errorf("Validate(%q, %s) = %v, want %v naming the fix", p, FormatSize(2*MinSize), err, ErrTooSmall)
	}
}

// Concurrent Ensures of one absent disk all succeed and exactly one creates
// it: the losers find the winner's disk instead of overwriting it.
func TestEnsureConcurrent(t *testing.T) {
	requireMkfs(t)
	p := filepath.Join(t.TempDir(), "nix.raw")
	type result struct {
		created bool
		err     error
	}
	results := make(chan result)
	const n = 4
	for range n {
		go func() {
			c, err := Ensure(p, "L", MinSize)
			results <- result{c, err}
		}()
	}
	creators := 0
	for range n {
		r := <-results
		if r.err != nil {
			t.Errorf("Ensure(%q) = %v", p, r.err)
		}
		if r.created {
			creators++
		}
	}
	if creators != 1 {
		t.Errorf("%d of %d concurrent Ensures created the disk, want 1", creators, n)
	}
	if got := leftovers(t, filepath.Dir(p)); got != nil {
		t.Errorf("temporary files left: %q", got)
	}
}

package disks

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A Create that fails after mkfs (or in it) leaves neither a disk under the
// real name nor its temporary file.
func TestCreateFailureLeavesNothing(t *testing.T) {
	requireMkfs(t)
	boom := errors.New("simulated failure")
	tests := []struct {
		name    string
		mkfs    func(path, label string) error
		publish func(tmp, path string, replace bool) error
	}{
		{"mkfs fails", func(string, string) error { return boom }, rename},
		{"mkfs fails after writing", func(p, l string) error {
			if err := mkfsBtrfs(p, l); err != nil {
				return err
			}
			return boom
		}, rename},
		{"rename fails", mkfsBtrfs, func(string, string, bool) error { return boom }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mkfs, publish = tt.mkfs, tt.publish
			t.Cleanup(func() { mkfs, publish = mkfsBtrfs, rename })
			p := filepath.Join(t.TempDir(), "nix.raw")
			if err := Create(p, "L", MinSize); !errors.Is(err, boom) {
				t.Errorf("Create(%q) = %v, want %v", p, err, boom)
			}
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Lstat(%q) after failed Create = %v, want not exist", p, err)
			}
			if got := leftovers(t, filepath.Dir(p)); got != nil {
				t.Errorf("temporary files left: %q", got)
			}
		})
	}
}

// A builder killed between mkfs and rename leaves its temporary file (a
// crash runs no cleanup), never a disk under the real name; the next Ensure
// creates the disk and removes the leftover.
func TestCrashLeftoverIsCleaned(t *testing.T) {
	requireMkfs(t)
	p := filepath.Join(t.TempDir(), "nix.raw")
	err := helper(t, "crash-create", p).Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("crashing child: %v, want exit status 3", err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat(%q) after a crash = %v, want not exist", p, err)
	}
	if got := leftovers(t, filepath.Dir(p)); len(got) != 1 {
		t.Fatalf("leftovers after a crash = %q, want one temporary file", got)
	}
	if created, err := Ensure(p, "L", MinSize); err != nil || !created {
		t.Fatalf("Ensure(%q) after a crash = %v, %v; want true, nil", p, created, err)
	}
	if got := leftovers(t, filepath.Dir(p)); got != nil {
		t.Errorf("leftovers after Ensure = %q, want none", got)
	}
}

// A temporary file whose builder is alive (holds its flock) is not a
// leftover: another Create of the same disk must leave it alone.
func TestLiveBuilderIsSpared(t *testing.T) {
	requireMkfs(t)
	dir := t.TempDir()
	live := filepath.Join(dir, ".nix.raw"+tmpInfix+"12345")
	f, err := os.Create(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := Create(filepath.Join(dir, "nix.raw"), "L", MinSize); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live builder's temporary file was removed: %v", err)
	}
	f.Close()
	// Now it is a leftover; the next build of that disk removes it.
	if err := Reset(filepath.Join(dir, "nix.raw"), "L", MinSize); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(%q) after its builder died = %v, want not exist", live, err)
	}
}

// BenchmarkCreate measures a default (64 GiB apparent) disk: sparse
// truncate, mkfs.btrfs, fsync and rename. alloc-bytes is what it costs on
// the host filesystem (du).
func BenchmarkCreate(b *testing.B) {
	requireMkfs(b)
	dir := b.TempDir()
	var alloc int64
	for i := 0; b.Loop(); i++ {
		p := filepath.Join(dir, "nix.raw")
		if err := Create(p, "LOFTD_NIX", DefaultSize); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			b.Fatal(err)
		}
		alloc = st.Blocks * 512
		os.Remove(p)
		b.StartTimer()
	}
	b.ReportMetric(float64(alloc), "alloc-bytes")
}

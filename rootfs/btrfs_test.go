package rootfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// btrfsState is testenv.Btrfs with a size: the 1 GiB benchmark image needs
// more than testenv's 1 GiB filesystem.
func btrfsState(t testing.TB, size int64) string {
	t.Helper()
	testenv.RequireRoot(t)
	mkfs := testenv.RequireCommand(t, "mkfs.btrfs", "btrfs-progs")
	img := filepath.Join(t.TempDir(), "btrfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command(mkfs, "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs %s: %v\n%s", img, err, out)
	}
	return testenv.Loop(t, img)
}

package guestinit

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/loftd/loftd/contract"
)

// TestWriteStatusFile: the file holds the last status written, and no
// temporary file is left beside it.
func TestWriteStatusFile(t *testing.T) {
	root := t.TempDir()
	for _, status := range []int{0, 137, 125} {
		if err := writeStatusFile(root, status); err != nil {
			t.Fatalf("writeStatusFile(%d): %v", status, err)
		}
		got, err := os.ReadFile(filepath.Join(root, contract.StatusPath))
		if want := []byte(strconv.Itoa(status) + "\n"); err != nil || string(got) != string(want) {
			t.Errorf("after writeStatusFile(%d): %s = %q, %v, want %q", status, contract.StatusPath, got, err, want)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(filepath.Join(root, contract.StatusPath)))
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only the status file", filepath.Dir(contract.StatusPath), len(entries))
	}
}

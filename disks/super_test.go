package disks

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

func TestReadSuper(t *testing.T) {
	p := newDisk(t, MinSize)
	if err := Grow(p, 2*MinSize); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb, err := ReadSuper(f)
	if err != nil {
		t.Fatalf("ReadSuper(%s) = %v", p, err)
	}
	_, label := superblock(t, p)
	// The file grew; the filesystem did not (GrowFilesystem never ran):
	// this is how a resize tells "finish the filesystem" from "done".
	if sb.Label != label || sb.TotalBytes != MinSize {
		t.Errorf("ReadSuper(%s) = %+v, want label %q and %d total bytes", p, sb, label, MinSize)
	}
	if _, err := ReadSuper(bytes.NewReader(make([]byte, 1<<20))); !errors.Is(err, ErrNotBtrfs) {
		t.Errorf("ReadSuper(zeros) = %v, want %v", err, ErrNotBtrfs)
	}
}

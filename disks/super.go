package disks

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Offsets in the primary btrfs superblock (struct btrfs_super_block, which
// starts at 64 KiB): total_bytes at 0x70, the label (256 bytes, NUL padded)
// at 0x12b.
const (
	superOffset      = 0x10000
	superTotalOffset = 0x70
	superLabelOffset = 0x12b
	superLabelSize   = 256
	superReadSize    = superLabelOffset + superLabelSize
)

// Super is what loftd reads from a btrfs superblock without mounting it.
type Super struct {
	Label string
	// TotalBytes is the size the filesystem believes its device has: less
	// than the file's size after a Grow whose GrowFilesystem has not run.
	TotalBytes int64
}

// ReadSuper reads the primary superblock of the btrfs filesystem in r (a
// disk file on the host, a block device in the guest). It only parses
// bytes: neither side mounts anything to learn a label or a size.
func ReadSuper(r io.ReaderAt) (Super, error) {
	buf := make([]byte, superReadSize)
	if _, err := r.ReadAt(buf, superOffset); err != nil && !errors.Is(err, io.EOF) {
		return Super{}, fmt.Errorf("read superblock: %w", err)
	}
	if string(buf[btrfsMagicOffset-superOffset:][:len(btrfsMagic)]) != btrfsMagic {
		return Super{}, ErrNotBtrfs
	}
	label := buf[superLabelOffset:]
	if i := bytes.IndexByte(label, 0); i >= 0 {
		label = label[:i]
	}
	return Super{
		Label:      string(label),
		TotalBytes: int64(binary.LittleEndian.Uint64(buf[superTotalOffset:])),
	}, nil
}

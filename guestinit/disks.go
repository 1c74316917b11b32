package guestinit

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The btrfs superblock sits at 64 KiB; within it the magic is at 0x40 and
// the label (NUL-padded, 256 bytes) at 0x12b, after the fixed fields and
// the 98-byte dev_item (linux/btrfs_tree.h, struct btrfs_super_block).
const (
	btrfsSuperOffset = 0x10000
	btrfsMagicOffset = 0x40
	btrfsLabelOffset = 0x12b
	btrfsLabelSize   = 256
	btrfsMagic       = "_BHRfS_M"
)

// btrfsLabel reads the label of the btrfs filesystem on path; ok is false
// when path holds no btrfs superblock.
func btrfsLabel(path string) (label string, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	buf := make([]byte, btrfsLabelOffset+btrfsLabelSize)
	if _, err := f.ReadAt(buf, btrfsSuperOffset); err != nil {
		if err == io.EOF {
			return "", false, nil // too small to hold a superblock
		}
		return "", false, fmt.Errorf("read btrfs superblock of %s: %w", path, err)
	}
	if string(buf[btrfsMagicOffset:btrfsMagicOffset+len(btrfsMagic)]) != btrfsMagic {
		return "", false, nil
	}
	l := buf[btrfsLabelOffset:]
	if i := bytes.IndexByte(l, 0); i >= 0 {
		l = l[:i]
	}
	return string(l), true, nil
}

// findDisks maps each wanted btrfs label to the /dev node of the virtio
// disk that carries it. Labels are read from the superblocks because
// libkrun's block_id is not a virtio serial (it derives the serial from the
// image file's dev/inode). Only when a label is on no disk does it fall
// back to device order (the host attaches the disks in the order of
// labels) among the btrfs disks with a label nobody asked for, and says so
// in warn: a disk relabelled by hand still works, but visibly.
func findDisks(sysRoot string, labels []string) (found map[string]string, warn []string, err error) {
	names, err := filepath.Glob(filepath.Join(sysRoot, "sys/block/vd*"))
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(names, func(i, j int) bool { // vda < vdb < … < vdz < vdaa
		a, b := filepath.Base(names[i]), filepath.Base(names[j])
		if len(a) != len(b) {
			return len(a) < len(b)
		}
		return a < b
	})
	want := map[string]bool{}
	for _, l := range labels {
		want[l] = true
	}
	found = map[string]string{}
	var spare []string // btrfs disks with some other label, in order
	for _, n := range names {
		dev := filepath.Join(sysRoot, "dev", filepath.Base(n))
		label, ok, err := btrfsLabel(dev)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case !ok:
		case want[label] && found[label] == "":
			found[label] = dev
		default:
			spare = append(spare, dev)
		}
	}
	for _, l := range labels {
		if found[l] != "" {
			continue
		}
		if len(spare) > 0 {
			found[l], spare = spare[0], spare[1:]
			warn = append(warn, fmt.Sprintf("no disk has btrfs label %s; using %s by device order", l, found[l]))
			continue
		}
		return nil, warn, fmt.Errorf("find disk labelled %s: none of %s carries it (the host attaches it; is the workspace disk a btrfs image with that label?)",
			l, strings.Join(baseNames(names), ", "))
	}
	return found, warn, nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	if len(out) == 0 {
		return []string{"no /sys/block/vd* device"}
	}
	return out
}

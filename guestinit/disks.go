package guestinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/loftd/loftd/disks"
)

// virtioDisk is one virtio disk as the guest sees it: its /dev node and
// the label of its btrfs superblock, read with the host's own reader
// (disks.ReadSuper) so that host and guest agree on the format.
type virtioDisk struct {
	dev   string
	label string
	btrfs bool // false: no btrfs superblock, label is empty
}

// String names the disk and what it carries, for errors that list disks.
func (d virtioDisk) String() string {
	if !d.btrfs {
		return fmt.Sprintf("%s (%v)", filepath.Base(d.dev), disks.ErrNotBtrfs)
	}
	return fmt.Sprintf("%s (label %q)", filepath.Base(d.dev), d.label)
}

// virtioDisks reads the superblock of each virtio disk under sysRoot, in
// device order (vda < vdb < … < vdz < vdaa). A disk that cannot be read
// is an error: a label it might carry would otherwise go unseen.
func virtioDisks(sysRoot string) ([]virtioDisk, error) {
	names, err := filepath.Glob(filepath.Join(sysRoot, "sys/block/vd*"))
	if err != nil {
		return nil, err
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := filepath.Base(names[i]), filepath.Base(names[j])
		if len(a) != len(b) {
			return len(a) < len(b)
		}
		return a < b
	})
	out := make([]virtioDisk, 0, len(names))
	for _, n := range names {
		d := virtioDisk{dev: filepath.Join(sysRoot, "dev", filepath.Base(n))}
		d.label, d.btrfs, err = btrfsLabel(d.dev)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// btrfsLabel reads the label of the btrfs filesystem on path; ok is false
// when path holds no btrfs superblock (a short file or device included).
func btrfsLabel(path string) (label string, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	sb, err := disks.ReadSuper(f)
	if errors.Is(err, disks.ErrNotBtrfs) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", path, err)
	}
	return sb.Label, true, nil
}

// diskMatch says how findDisks may settle a label that no disk carries.
type diskMatch int

const (
	// byLabelOnly fails: resize grows only the disk the host named.
	byLabelOnly diskMatch = iota
	// byLabelThenOrder falls back to device order (sessions).
	byLabelThenOrder
)

// findDisks maps each wanted btrfs label to the /dev node of the virtio
// disk that carries it. Labels are read from the superblocks because
// libkrun's block_id is not a virtio serial (it derives the serial from the
// image file's dev/inode). With byLabelThenOrder, a label that is on no
// disk falls back to device order (the host attaches the disks in the
// order of labels) among the btrfs disks with a label nobody asked for,
// and says so in warn: a disk relabelled by hand still works, but visibly.
func findDisks(sysRoot string, labels []string, match diskMatch) (found map[string]string, warn []string, err error) {
	all, err := virtioDisks(sysRoot)
	if err != nil {
		return nil, nil, err
	}
	want := map[string]bool{}
	for _, l := range labels {
		want[l] = true
	}
	found = map[string]string{}
	var spare []string // btrfs disks with some other label, in order
	for _, d := range all {
		switch {
		case !d.btrfs:
		case want[d.label] && found[d.label] == "":
			found[d.label] = d.dev
		default:
			spare = append(spare, d.dev)
		}
	}
	for _, l := range labels {
		if found[l] != "" {
			continue
		}
		if match == byLabelThenOrder && len(spare) > 0 {
			found[l], spare = spare[0], spare[1:]
			warn = append(warn, fmt.Sprintf("no disk has btrfs label %s; using %s by device order", l, found[l]))
			continue
		}
		return nil, warn, fmt.Errorf("find disk labelled %s: %s", l, describeDisks(sysRoot, all))
	}
	return found, warn, nil
}

// describeDisks says what the guest saw instead of the disk it wanted.
func describeDisks(sysRoot string, all []virtioDisk) string {
	if len(all) == 0 {
		return "no virtio disk in " + filepath.Join(sysRoot, "sys/block")
	}
	seen := make([]string, len(all))
	for i, d := range all {
		seen[i] = d.String()
	}
	return "none of " + strings.Join(seen, ", ") + " carries it (the host attaches it; is the disk image a btrfs filesystem with that label?)"
}

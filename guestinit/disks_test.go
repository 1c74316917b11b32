package guestinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/internal/testenv"
)

// craftBtrfs writes the head of a btrfs disk: the superblock's magic and
// label at the offsets the kernel reads (0x10040 and 0x1012b, from
// struct btrfs_super_block), nothing else; label "-" writes no magic.
func craftBtrfs(t *testing.T, path, label string) {
	t.Helper()
	buf := make([]byte, 0x11000)
	if label != "-" {
		copy(buf[0x10040:], "_BHRfS_M")
		copy(buf[0x1012b:], label)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sysRoot builds /sys/block/vdX and /dev/vdX for each disk (vdX → label,
// "-": not btrfs).
func sysRoot(t *testing.T, labels map[string]string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sys/block"), 0o755); err != nil {
		t.Fatal(err)
	}
	for dev, label := range labels {
		if err := os.Mkdir(filepath.Join(root, "sys/block", dev), 0o755); err != nil {
			t.Fatal(err)
		}
		craftBtrfs(t, filepath.Join(root, "dev", dev), label)
	}
	return root
}

// TestBtrfsLabelRealFilesystem reads the label mkfs.btrfs wrote: the
// offsets are checked against the real on-disk format, not against
// craftBtrfs's idea of it.
func TestBtrfsLabelRealFilesystem(t *testing.T) {
	mkfs := testenv.RequireCommand(t, "mkfs.btrfs", "btrfs-progs")
	img := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 256<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", "-L", contract.ContainersLabel, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs: %v\n%s", err, out)
	}
	label, ok, err := btrfsLabel(img)
	if err != nil || !ok || label != contract.ContainersLabel {
		t.Errorf("btrfsLabel(mkfs.btrfs -L %s) = %q, %v, %v", contract.ContainersLabel, label, ok, err)
	}
}

func TestBtrfsLabel(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", 256) // no NUL: the whole field
	for _, tt := range []struct {
		name, label, want string
		ok                bool
	}{
		{"labelled", contract.NixLabel, contract.NixLabel, true},
		{"empty label", "", "", true},
		{"full-length label", long, long, true},
		{"no magic", "-", "", false},
	} {
		p := filepath.Join(dir, tt.name)
		craftBtrfs(t, p, tt.label)
		label, ok, err := btrfsLabel(p)
		if err != nil || ok != tt.ok || label != tt.want {
			t.Errorf("%s: btrfsLabel = %q, %v, %v; want %q, %v", tt.name, label, ok, err, tt.want, tt.ok)
		}
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tiny"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := btrfsLabel(short); ok || err != nil {
		t.Errorf("btrfsLabel(4-byte file) = ok %v, %v; want not btrfs, no error", ok, err)
	}
}

func TestFindDisks(t *testing.T) {
	both := []string{contract.NixLabel, contract.ContainersLabel}
	for _, tt := range []struct {
		name     string
		disks    map[string]string // vdX → label ("-": not btrfs)
		labels   []string
		match    diskMatch
		want     map[string]string // label → vdX
		warnings int
		errHas   []string
	}{
		{"by label, not by order", map[string]string{"vda": contract.ContainersLabel, "vdb": contract.NixLabel}, both, byLabelThenOrder,
			map[string]string{contract.NixLabel: "vdb", contract.ContainersLabel: "vda"}, 0, nil},
		{"other disks ignored", map[string]string{"vda": "-", "vdb": contract.NixLabel, "vdc": contract.ContainersLabel}, both, byLabelThenOrder,
			map[string]string{contract.NixLabel: "vdb", contract.ContainersLabel: "vdc"}, 0, nil},
		{"device order as last resort", map[string]string{"vda": contract.NixLabel, "vdb": "relabelled"}, both, byLabelThenOrder,
			map[string]string{contract.NixLabel: "vda", contract.ContainersLabel: "vdb"}, 1, nil},
		{"vdaa after vdz", map[string]string{"vdaa": "b", "vdz": "a"}, both, byLabelThenOrder,
			map[string]string{contract.NixLabel: "vdz", contract.ContainersLabel: "vdaa"}, 2, nil},
		{"missing", map[string]string{"vda": contract.NixLabel, "vdb": "-"}, both, byLabelThenOrder,
			nil, 0, []string{"find disk labelled LOFTD_CONTAINERS", `vda (label "LOFTD_NIX")`, "vdb (not a btrfs image)"}},
		// Resize grows only the disk the host named: no fallback.
		{"resize: second of two", map[string]string{"vda": contract.NixLabel, "vdb": contract.ContainersLabel}, []string{contract.ContainersLabel}, byLabelOnly,
			map[string]string{contract.ContainersLabel: "vdb"}, 0, nil},
		{"resize: alone", map[string]string{"vda": contract.NixLabel}, []string{contract.NixLabel}, byLabelOnly,
			map[string]string{contract.NixLabel: "vda"}, 0, nil},
		{"resize: other disk only", map[string]string{"vda": contract.NixLabel}, []string{contract.ContainersLabel}, byLabelOnly,
			nil, 0, []string{"LOFTD_CONTAINERS", "vda", `label "LOFTD_NIX"`}},
		{"resize: not btrfs", map[string]string{"vda": "-"}, []string{contract.NixLabel}, byLabelOnly,
			nil, 0, []string{"vda", "not a btrfs image"}},
		{"resize: no disk", nil, []string{contract.NixLabel}, byLabelOnly,
			nil, 0, []string{"no virtio disk"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := sysRoot(t, tt.disks)
			got, warn, err := findDisks(root, tt.labels, tt.match)
			if tt.errHas != nil {
				if err == nil {
					t.Fatalf("findDisks(%q) = %v; want an error", tt.labels, got)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("findDisks(%q) error %q, want it to mention %q", tt.labels, err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for label, dev := range tt.want {
				if got[label] != filepath.Join(root, "dev", dev) {
					t.Errorf("disk %s = %s, want /dev/%s", label, got[label], dev)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("findDisks(%q) = %v, want %d disks", tt.labels, got, len(tt.want))
			}
			if len(warn) != tt.warnings {
				t.Errorf("warnings %q; want %d", warn, tt.warnings)
			}
		})
	}
}

package guestinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/guestinit/contract"
	"github.com/loftd/loftd/internal/testenv"
)

// craftBtrfs writes a file that has just a btrfs superblock's magic and
// label where the kernel looks for them (or no magic when label is "-").
func craftBtrfs(t *testing.T, path, label string) {
	t.Helper()
	buf := make([]byte, btrfsSuperOffset+4096)
	if label != "-" {
		copy(buf[btrfsSuperOffset+btrfsMagicOffset:], btrfsMagic)
		copy(buf[btrfsSuperOffset+btrfsLabelOffset:], label)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
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
	long := strings.Repeat("x", btrfsLabelSize) // no NUL: the whole field
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
	labels := []string{contract.NixLabel, contract.ContainersLabel}
	for _, tt := range []struct {
		name     string
		disks    map[string]string // vdX → label ("-": not btrfs)
		want     map[string]string // label → vdX
		warnings int
		err      string
	}{
		{"by label, not by order", map[string]string{"vda": contract.ContainersLabel, "vdb": contract.NixLabel},
			map[string]string{contract.NixLabel: "vdb", contract.ContainersLabel: "vda"}, 0, ""},
		{"other disks ignored", map[string]string{"vda": "-", "vdb": contract.NixLabel, "vdc": contract.ContainersLabel},
			map[string]string{contract.NixLabel: "vdb", contract.ContainersLabel: "vdc"}, 0, ""},
		{"device order as last resort", map[string]string{"vda": contract.NixLabel, "vdb": "relabelled"},
			map[string]string{contract.NixLabel: "vda", contract.ContainersLabel: "vdb"}, 1, ""},
		{"vdaa after vdz", map[string]string{"vdaa": "b", "vdz": "a"},
			map[string]string{contract.NixLabel: "vdz", contract.ContainersLabel: "vdaa"}, 2, ""},
		{"missing", map[string]string{"vda": contract.NixLabel, "vdb": "-"}, nil, 0, "find disk labelled LOFTD_CONTAINERS"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for dev, label := range tt.disks {
				if err := os.MkdirAll(filepath.Join(root, "sys/block", dev), 0o755); err != nil {
					t.Fatal(err)
				}
				craftBtrfs(t, filepath.Join(root, "dev", dev), label)
			}
			got, warn, err := findDisks(root, labels)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("findDisks = %v, %v; want an error with %q", got, err, tt.err)
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
			if len(warn) != tt.warnings {
				t.Errorf("warnings %q; want %d", warn, tt.warnings)
			}
		})
	}
}

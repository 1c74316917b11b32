package guestinit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loftd/loftd/guestinit/contract"
)

// fakeBtrfs writes the head of a btrfs disk: the superblock magic and label
// at the offsets the kernel reads (0x10040 and 0x1012b), nothing else.
func fakeBtrfs(t *testing.T, path, label string) {
	t.Helper()
	b := make([]byte, 0x11000)
	copy(b[0x10040:], "_BHRfS_M")
	copy(b[0x1012b:], label)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// sysRoot builds /sys/block/vdX and /dev/vdX for each disk; "" is a disk
// without a btrfs superblock.
func sysRoot(t *testing.T, labels map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"sys/block", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, label := range labels {
		if err := os.Mkdir(filepath.Join(root, "sys/block", name), 0o755); err != nil {
			t.Fatal(err)
		}
		dev := filepath.Join(root, "dev", name)
		if label == "" {
			if err := os.WriteFile(dev, make([]byte, 0x11000), 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		fakeBtrfs(t, dev, label)
	}
	return root
}

func TestFindDiskByLabel(t *testing.T) {
	tests := []struct {
		name   string
		disks  map[string]string
		label  string
		want   string // device name; "" = an error
		errHas []string
	}{
		{"second of two", map[string]string{"vda": contract.NixLabel, "vdb": contract.ContainersLabel}, contract.ContainersLabel, "vdb", nil},
		{"alone", map[string]string{"vda": contract.NixLabel}, contract.NixLabel, "vda", nil},
		{"other disk only", map[string]string{"vda": contract.NixLabel}, contract.ContainersLabel, "", []string{"LOFTD_CONTAINERS", "vda", `label "LOFTD_NIX"`}},
		{"not btrfs", map[string]string{"vda": ""}, contract.NixLabel, "", []string{"vda", "not a btrfs image"}},
		{"no disk", nil, contract.NixLabel, "", []string{"no virtio disk"}},
	}
	for _, tt := range tests {
		root := sysRoot(t, tt.disks)
		got, err := findDiskByLabel(root, tt.label)
		if tt.want != "" {
			if want := filepath.Join(root, "dev", tt.want); got != want || err != nil {
				t.Errorf("%s: findDiskByLabel(%s) = %q, %v; want %q", tt.name, tt.label, got, err, want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: findDiskByLabel(%s) = %q, want an error", tt.name, tt.label, got)
			continue
		}
		for _, s := range tt.errHas {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: findDiskByLabel(%s) error %q, want it to mention %q", tt.name, tt.label, err, s)
			}
		}
	}
}

// In resize mode the contract is accepted and the steps are the resize's:
// no workspace mount, no workload, one grow of the named disk.
func TestResizeModeSteps(t *testing.T) {
	g := contract.Guest{Mode: contract.ModeResize, UID: 1000, GID: 1000, User: "dev", ResizeDisk: contract.ContainersDiskID}
	data, err := json.Marshal(contract.KrunConfig{Cmd: []string{contract.GuestInitPath, "enter"}, Env: g.Env(), WorkingDir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSystem{config: string(data)}
	e := newEnter(f.system(t), true, nil)
	if err := e.readConfig(); err != nil {
		t.Fatalf("readConfig in resize mode: %v", err)
	}
	var got []string
	for _, s := range e.resizeSteps() {
		got = append(got, s.String())
	}
	want := []string{
		"wire stdio krun-stdin krun-stdout krun-stderr",
		"btrfs filesystem resize max /run/loftd/resize-loftd-containers (disk loftd-containers)",
		"report status on loftd-status",
	}
	if !slices.Equal(got, want) {
		t.Errorf("resize steps:\n got %q\nwant %q", got, want)
	}
}

// LOFTD_VOLUMES becomes one mount per share, after the workspace's; a
// read-only share is mounted MS_RDONLY.
func TestVolumeSteps(t *testing.T) {
	vols := []contract.Volume{{Tag: "loftd-vol0", Target: "/home/dev/.config/gh"}, {Tag: "loftd-vol1", Target: "/data", ReadOnly: true}}
	g := contract.Guest{Mode: contract.ModeEnter, UID: 1000, GID: 1000, User: "dev", WorkspaceTag: contract.WorkspaceTag}
	data, err := json.Marshal(contract.KrunConfig{Cmd: []string{contract.GuestInitPath, "enter"}, Env: append(g.Env(), contract.VolumesEnv(vols)), WorkingDir: "/workspace"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSystem{config: string(data)}
	e := newEnter(f.system(t), true, nil)
	if err := e.readConfig(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range e.planSteps() {
		if !strings.HasPrefix(s.String(), "mount -t virtiofs") {
			continue // the baseline steps come first
		}
		got = append(got, s.String())
		if err := s.Do(); err != nil {
			t.Fatalf("step %s: %v", s, err)
		}
	}
	want := []string{
		"mount -t virtiofs loftd-workspace /workspace",
		"mount -t virtiofs loftd-vol0 /home/dev/.config/gh",
		"mount -t virtiofs -o ro loftd-vol1 /data",
	}
	if !slices.Equal(got, want) {
		t.Errorf("steps:\n got %q\nwant %q", got, want)
	}
	if len(f.mounts) != 3 || f.mounts[2] != "virtiofs loftd-vol1 /data " {
		t.Errorf("mounts = %q", f.mounts)
	}
}

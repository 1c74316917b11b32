package guestinit

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/loftd/loftd/contract"
)

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
		"mount -t virtiofs -o nosuid loftd-workspace /workspace",
		"mount -t virtiofs -o nosuid,nodev loftd-vol0 /home/dev/.config/gh",
		"mount -t virtiofs -o ro,nosuid,nodev loftd-vol1 /data",
	}
	if !slices.Equal(got, want) {
		t.Errorf("steps:\n got %q\nwant %q", got, want)
	}
	if len(f.mounts) != 3 || f.mounts[2] != "virtiofs loftd-vol1 /data " {
		t.Errorf("mounts = %q", f.mounts)
	}
}

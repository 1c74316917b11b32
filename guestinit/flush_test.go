package guestinit

import (
	"fmt"
	"slices"
	"testing"
)

// TestFlushPlan: every filesystem that holds data is synced once,
// innermost first; the shares (no dirty pages once every process is gone)
// and memory filesystems are left alone.
func TestFlushPlan(t *testing.T) {
	m := func(point, fstype string, major, minor int) mount {
		return mount{dev: fmt.Sprintf("%d:%d", major, minor), point: point, fstype: fstype}
	}
	guest := []mount{
		m("/", "virtiofs", 0, 20),
		m("/proc", "proc", 0, 3), m("/sys", "sysfs", 0, 4), m("/dev", "devtmpfs", 0, 5),
		m("/dev/pts", "devpts", 0, 6), m("/sys/fs/cgroup", "cgroup2", 0, 7),
		m("/tmp", "tmpfs", 0, 8), m("/run", "tmpfs", 0, 9), m("/dev/shm", "tmpfs", 0, 10),
		m("/dev/mqueue", "mqueue", 0, 11),
		m("/workspace", "virtiofs", 0, 21),
		m("/home/dev/.config/tool", "virtiofs", 0, 22),
		m("/run/loftd/nix-disk", "btrfs", 0, 30),
		m("/nix", "overlay", 0, 31),
		m("/home/dev/.local/share/containers", "btrfs", 0, 32),
		m("/mnt/nix", "btrfs", 0, 30),     // a second mount of the nix disk
		m("/workspace/img", "ext4", 7, 0), // the workload's own loop mount
	}
	want := []string{"/home/dev/.local/share/containers", "/run/loftd/nix-disk", "/workspace/img", "/nix"}
	got, ok := flushPlan(guest)
	if !ok || !slices.Equal(got, want) {
		t.Errorf("flushPlan(guest) = %q, %v, want %q, true", got, ok, want)
	}

	// A bind-mounted namespace hides mounts this table does not show.
	if _, ok := flushPlan(append(guest, m("/run/netns/x", "nsfs", 0, 4))); ok {
		t.Errorf("flushPlan with an nsfs mount = ok, want sync(2) instead")
	}
}

func TestParseMountinfo(t *testing.T) {
	text := `24 1 0:20 / / rw,relatime - virtiofs /dev/root rw
25 24 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
40 24 0:35 / /work\040space rw,relatime shared:1 master:2 - virtiofs loftd-workspace rw
41 24 254:0 / /run/loftd/nix-disk rw,nodev,noatime - btrfs /dev/vda rw,space_cache=v2,subvolid=5,subvol=/
`
	want := []mount{
		{"0:20", "/", "virtiofs"},
		{"0:21", "/proc", "proc"},
		{"0:35", "/work space", "virtiofs"},
		{"254:0", "/run/loftd/nix-disk", "btrfs"},
	}
	got, err := parseMountinfo(text)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("parseMountinfo() = %+v, %v, want %+v", got, err, want)
	}
	if _, err := parseMountinfo("24 1 0:20 / / rw\n"); err == nil {
		t.Errorf("parseMountinfo(line without ' - TYPE') = nil error, want one")
	}
	for in, want := range map[string]string{`a\040b`: "a b", `tab\011`: "tab\t", `back\134slash`: `back\slash`, `end\04`: `end\04`, "plain": "plain"} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

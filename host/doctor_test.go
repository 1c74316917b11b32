package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containers/storage/pkg/idtools"
	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/launch"
	"golang.org/x/sys/unix"
)

// TestDoctor runs loftd doctor on this machine: with QEMU and libkrunfw
// present it must name a working backend and exit 0; every check prints.
func TestDoctor(t *testing.T) {
	vm := testenv.RequireVM(t)
	t.Setenv("LOFTD_LIBKRUNFW_LIBRARY", vm.Krunfw)
	c := newCLI(t)
	status, stdout, stderr := c.run("doctor")
	for _, want := range []string{"/dev/kvm", "libkrun", "libkrunfw", "qemu", "state", "image store", "backend: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("loftd doctor does not report %q:\n%s", want, stdout)
		}
	}
	if status != 0 {
		t.Errorf("loftd doctor with QEMU and libkrunfw present: status %d, want 0\n%s%s", status, stdout, stderr)
	}
}

// TestDoctorNoBackend hides libkrunfw and libkrun: no backend can run, and
// doctor must say so with status 1 and print a fix for each failure.
func TestDoctorNoBackend(t *testing.T) {
	t.Setenv("LOFTD_LIBKRUNFW_LIBRARY", "/nonexistent/libkrunfw.so.5")
	t.Setenv("LOFTD_LIBKRUN_LIBRARY", "/nonexistent/libkrun.so.1")
	c := newCLI(t)
	status, stdout, stderr := c.run("doctor")
	if status != 1 || !strings.Contains(stderr, "no VM backend can run here") {
		t.Errorf("loftd doctor without libkrun and libkrunfw: status %d, stderr %q; want 1 and the verdict", status, stderr)
	}
	if !strings.Contains(stdout, "fix: ") || !strings.Contains(stdout, "scripts/fetch-libkrunfw") {
		t.Errorf("loftd doctor prints no fix for libkrunfw:\n%s", stdout)
	}
}

func subRange(start, size int) idtools.IDMap {
	return idtools.IDMap{HostID: start, Size: size}
}

// TestDoctorSubIDsAgreeWithRun: doctor judges the range the run maps (the
// first); it used to sum every range and pass a user whose run then failed.
func TestDoctorSubIDsAgreeWithRun(t *testing.T) {
	for _, tt := range []struct {
		ranges []idtools.IDMap
		want   string // level of every check
	}{
		{[]idtools.IDMap{subRange(100000, 65536)}, "ok"},
		{[]idtools.IDMap{subRange(100000, 65536), subRange(300000, 65536)}, "ok"},
		// 66536 ids in all, but the first range is smaller than uid 1001.
		{[]idtools.IDMap{subRange(100000, 1000), subRange(200000, 65536)}, "fail"},
		// Enough for the keep-id map of uid 1001, too few for an image.
		{[]idtools.IDMap{subRange(100000, 2000), subRange(200000, 65536)}, "fail"},
		{nil, "fail"},
	} {
		checks := subIDChecks("alice", 1001, 1001, tt.ranges, tt.ranges, nil)
		for _, c := range checks {
			if c.level != tt.want || (c.level != "ok" && !strings.Contains(c.fix, "usermod")) {
				t.Errorf("subIDChecks(alice, %v): %s %s (fix %q), want %s", tt.ranges, c.name, c.detail, c.fix, tt.want)
			}
		}
	}
}

// TestMountHasOptionEscaped mounts a tmpfs on a directory with a space,
// which mountinfo writes as \040.
func TestMountHasOptionEscaped(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "a b")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "nr_inodes=1234"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if !mountHasOption(dir, "nr_inodes=1234") {
		t.Errorf("mountHasOption(%q, nr_inodes=1234) = false on a tmpfs mounted with it", dir)
	}
	if mountHasOption(dir+"x", "nr_inodes=1234") {
		t.Errorf("mountHasOption(%q) took %q for its mount", dir+"x", dir)
	}
}

// TestDoctorMemoryCeilings: doctor warns once the running VMs' --mem
// ceilings add up to more than overcommitFactor × host RAM; dead tasks and
// tasks without a plan do not count.
func TestDoctorMemoryCeilings(t *testing.T) {
	const ram = 16 << 30
	vm := func(gib int, alive bool) state.TaskInfo {
		return state.TaskInfo{Alive: alive, Plan: &launch.Plan{RAMMiB: launch.GiB(uint64(gib))}}
	}
	tests := []struct {
		name  string
		tasks []state.TaskInfo
		want  string
	}{
		{"none", nil, "ok"},
		{"two defaults", []state.TaskInfo{vm(12, true), vm(12, true)}, "ok"},
		{"exactly twice", []state.TaskInfo{vm(16, true), vm(16, true)}, "ok"},
		{"three defaults", []state.TaskInfo{vm(12, true), vm(12, true), vm(12, true)}, "warn"},
		{"dead ones do not count", []state.TaskInfo{vm(12, true), vm(12, true), vm(12, false), vm(12, false)}, "ok"},
		{"no plan yet", []state.TaskInfo{vm(12, true), vm(12, true), {Alive: true}}, "ok"},
	}
	for _, tt := range tests {
		c := checkMemoryCeilings(tt.tasks, ram)
		if c.level != tt.want || (c.level == "warn") != (c.fix != "") {
			t.Errorf("%s: checkMemoryCeilings() = %s (%s, fix %q), want %s", tt.name, c.level, c.detail, c.fix, tt.want)
		}
	}
}

// doctor names the guest network and, on the egress default without
// opt-ins, what it refuses and how to open it.
func TestDoctorNetwork(t *testing.T) {
	for _, tt := range []struct {
		cfg       session.NetworkConfig
		want, fix string
	}{
		{session.NetworkConfig{}, "the host's loopback, private ranges and link-local addresses are refused", "--allow-host"},
		{session.NetworkConfig{Allow: []string{"10.0.0.0/8"}, AllowHost: true}, "config allows allow_host, 10.0.0.0/8", ""},
		{session.NetworkConfig{Mode: "passt"}, "passt, unfiltered", ""},
	} {
		c := checkNetwork(&session.Config{Network: tt.cfg})
		if c.level != "ok" || !strings.Contains(c.detail, tt.want) || !strings.Contains(c.fix, tt.fix) || (tt.fix == "" && c.fix != "") {
			t.Errorf("checkNetwork(%+v) = %+v, want detail with %q and fix with %q", tt.cfg, c, tt.want, tt.fix)
		}
	}
}

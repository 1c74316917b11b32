package rootfs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containers/storage/pkg/idtools"
)

func TestNormalizeRef(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"debian:12", "docker://debian:12"},
		{"docker.io/library/debian", "docker://docker.io/library/debian"},
		{"localhost:5000/img:tag", "docker://localhost:5000/img:tag"},
		{"docker://alpine", "docker://alpine"},
		{"oci:/tmp/layout:tag", "oci:/tmp/layout:tag"},
		{"oci-archive:/tmp/a.tar", "oci-archive:/tmp/a.tar"},
		{"docker-archive:/tmp/a.tar", "docker-archive:/tmp/a.tar"},
		{"containers-storage:quay.io/x/y", "containers-storage:quay.io/x/y"},
	} {
		if got := NormalizeRef(tc.in); got != tc.want {
			t.Errorf("NormalizeRef(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParsePullPolicy(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    PullPolicy
		wantErr bool
	}{
		{"", PullMissing, false}, {"missing", PullMissing, false}, {"always", PullAlways, false},
		{"never", PullNever, false}, {"newer", "", true},
	} {
		got, err := ParsePullPolicy(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParsePullPolicy(%q) = %q, %v, want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestChooseDriverExplicit(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		want, driver string
		wantErr      bool
	}{
		{"btrfs", "btrfs", false}, {"overlay", "overlay", false}, {"vfs", "vfs", false}, {"zfs", "", true},
	} {
		got, _, err := chooseDriver(dir, tc.want)
		if got != tc.driver || (err != nil) != tc.wantErr {
			t.Errorf("chooseDriver(%q) = %q, %v, want %q, error %v", tc.want, got, err, tc.driver, tc.wantErr)
		}
	}
	// An existing store keeps its driver: containers/storage cannot switch.
	if err := os.Mkdir(filepath.Join(dir, "vfs-layers"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got, reason, _ := chooseDriver(dir, "auto"); got != "vfs" {
		t.Errorf("chooseDriver(auto) on a vfs store = %q (%s), want vfs", got, reason)
	}
}

func TestKeepIDMap(t *testing.T) {
	for _, tc := range []struct {
		id, start, count uint32
		want             []IDMap
		wantErr          bool
	}{
		{1001, 100000, 65536, []IDMap{{0, 100000, 1}, {1, 100001, 1000}, {1001, 1001, 1}, {1002, 101001, 64535}}, false},
		{1, 100000, 65536, []IDMap{{0, 100000, 1}, {1, 1, 1}, {2, 100001, 65535}}, false},
		{1000, 200000, 1000, []IDMap{{0, 200000, 1}, {1, 200001, 999}, {1000, 1000, 1}}, false},
		{1000, 200000, 999, nil, true},
		{0, 100000, 65536, nil, true},
	} {
		got, err := keepIDMap(tc.id, tc.start, tc.count)
		if !reflect.DeepEqual(got, tc.want) || (err != nil) != tc.wantErr {
			t.Errorf("keepIDMap(%d, %d, %d) = %v, %v, want %v, error %v", tc.id, tc.start, tc.count, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestKeepIDFirstRange: of several subordinate ranges keep-id maps the
// first (lowest start, idtools' order) non-empty one, and says so in SubUID.
func TestKeepIDFirstRange(t *testing.T) {
	for _, tc := range []struct {
		ranges  []idtools.IDMap
		want    IDMap
		wantErr string
	}{
		{[]idtools.IDMap{sub(0, 100000, 65536), sub(65536, 300000, 65536)}, IDMap{0, 100000, 65536}, ""},
		{[]idtools.IDMap{sub(0, 100000, 0), sub(0, 200000, 65536)}, IDMap{0, 200000, 65536}, ""},
		// The sum would be enough for uid 1001; the first range is not.
		{[]idtools.IDMap{sub(0, 100000, 1000), sub(1000, 200000, 65536)}, IDMap{}, "smaller than uid 1001"},
		{nil, IDMap{}, "alice:100000:65536"},
	} {
		k, err := KeepIDFor("alice", 1001, 1001, tc.ranges, tc.ranges)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("KeepIDFor(alice, %v) = %v, want an error with %q", tc.ranges, err, tc.wantErr)
			}
			continue
		}
		if err != nil || k.SubUID != tc.want || k.SubGID != tc.want {
			t.Errorf("KeepIDFor(alice, %v) = %+v, %v; want the range %v", tc.ranges, k, err, tc.want)
		}
	}
}

func sub(c, h, n int) idtools.IDMap { return idtools.IDMap{ContainerID: c, HostID: h, Size: n} }

// TestSubIDsNamesTheFix: a user without subordinate ids gets the line to
// add and the package to install.
func TestSubIDsNamesTheFix(t *testing.T) {
	_, _, err := SubIDs("loftd-no-such-user")
	if err == nil || !strings.Contains(err.Error(), "loftd-no-such-user:100000:65536") || !strings.Contains(err.Error(), "uidmap") {
		t.Errorf("SubIDs(loftd-no-such-user) error = %v, want one naming the subuid line and the uidmap package", err)
	}
}

func TestProgressWriter(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if got := ProgressWriter(w); got != nil {
		t.Errorf("ProgressWriter(pipe) = %v, want nil (not a terminal)", got)
	}
	if got := ProgressWriter(nil); got != nil {
		t.Errorf("ProgressWriter(nil) = %v, want nil", got)
	}
}

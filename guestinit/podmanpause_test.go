package guestinit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPodmanIDMap: the pause process's map is what newuidmap would write
// for rootless Podman: the user's own id as 0, then every subordinate
// range of the user (by name or uid) in order; other users' and malformed
// lines are skipped.
func TestPodmanIDMap(t *testing.T) {
	for _, tt := range []struct {
		name, data string
		want       string
	}{
		{"one range", "dev:100000:65536\n", "0 1000 1\n1 100000 65536\n"},
		{"by uid, two ranges", "1000:100000:10\nalice:200000:5\ndev:300000:20\n", "0 1000 1\n1 100000 10\n11 300000 20\n"},
		{"malformed skipped", "dev:x:10\ndev:5\ndev:100:0\ndev:100000:65536\n", "0 1000 1\n1 100000 65536\n"},
		{"none", "", "0 1000 1\n"},
	} {
		if got := idMap(1000, subIDRanges(tt.data, "dev", 1000)); got != tt.want {
			t.Errorf("%s: idMap(subIDRanges(%q)) = %q, want %q", tt.name, tt.data, got, tt.want)
		}
	}
}

// TestPreparePodmanPause: the pause process is planned only when the image
// has unshare and sleep and no pause pid file is there; its maps come from
// the guest's subordinate ids and the pid file's directory is the user's.
func TestPreparePodmanPause(t *testing.T) {
	uid, gid := testIDs()
	for _, tt := range []struct {
		name    string
		bins    []string
		pidFile bool
		want    bool
	}{
		{"image with unshare and sleep", []string{"unshare", "sleep"}, false, true},
		{"no sleep: podman makes its own", []string{"unshare"}, false, false},
		{"a pid file already", []string{"unshare", "sleep"}, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bins := map[string]string{}
			for _, b := range tt.bins {
				bins[b] = ""
			}
			root := guestRoot(t, bins)
			if err := os.WriteFile(filepath.Join(root, "etc/subuid"), []byte("dev:100000:65536\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			d := &diskPrep{e: diskPrepFor(t, root, &fakeSystem{}), user: "dev", uid: uid, gid: gid, home: "/home/dev"}
			pidFile := filepath.Join(root, d.podmanPausePID())
			if tt.pidFile {
				if err := os.MkdirAll(filepath.Dir(pidFile), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(pidFile, []byte("1"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p, err := d.preparePodmanPause()
			if err != nil {
				t.Fatal(err)
			}
			if (p != nil) != tt.want {
				t.Fatalf("preparePodmanPause() = %v, want a pause process: %v", p, tt.want)
			}
			if p == nil {
				return
			}
			defer p.dir.Close()
			want := fmt.Sprintf("0 %d 1\n1 100000 65536\n", uid)
			if p.uidMap != want {
				t.Errorf("uid map %q, want %q", p.uidMap, want)
			}
			if got := strings.Join(p.argv[1:6], " "); got != "--user --mount --propagation unchanged --" {
				t.Errorf("argv %q: want unshare --user --mount --propagation unchanged -- sleep infinity", p.argv)
			}
			var st unix.Stat_t
			if err := unix.Stat(filepath.Dir(pidFile), &st); err != nil || int(st.Uid) != uid || st.Mode&0o777 != 0o700 {
				t.Errorf("stat %s: %v, uid %d mode %o; want the user's, 0700", filepath.Dir(pidFile), err, st.Uid, st.Mode&0o777)
			}
		})
	}
}

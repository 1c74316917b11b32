package guestinit

import "testing"

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

package virtiofs

import (
	"strings"
	"testing"
)

func TestWithin(t *testing.T) {
	tests := []struct {
		name, uidMap string
		avoid        uint32
		want         Range
		wantErr      string
	}{
		{"initial namespace keeps the range", "0 0 4294967295", 1000, DefaultRange, ""},
		{"a pod's 65536 ids, owner root: all but 0", "0 2147418112 65536", 0, Range{Start: 1, Size: 65535}, ""},
		{"a pod's ids, owner 1000: the larger side", "0 2147418112 65536", 1000, Range{Start: 1001, Size: 64535}, ""},
		{"two blocks: the larger", "0 100000 1000\n1000 5000000 60000", 0, Range{Start: 1000, Size: 60000}, ""},
		{"the range fits a block: kept", "0 0 1\n1879048192 1879048192 65536", 0, DefaultRange, ""},
		{"nothing usable", "0 1000 1", 0, Range{}, "maps no block"},
		{"garbage lines are skipped", "x y z\n0 2147418112 65536\n", 0, Range{Start: 1, Size: 65535}, ""},
	}
	for _, tt := range tests {
		got, err := Within(DefaultRange, tt.uidMap, tt.avoid)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: Within = %+v, %v; want an error with %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: Within = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
		// The result must build a share map with the owner outside it.
		if _, err := ShareIDs(Owner{GuestUID: 1000, GuestGID: 1000, HostUID: tt.avoid, HostGID: tt.avoid}, got, got); err != nil {
			t.Errorf("%s: ShareIDs over %+v: %v", tt.name, got, err)
		}
	}
}

package virtiofs

import (
	"reflect"
	"testing"

	"github.com/loftd/loftd/launch"
)

func e(guest, host, size uint32) launch.IDMap {
	return launch.IDMap{Guest: guest, Host: host, Size: size}
}

// hostID is where guest id g lands through m, and whether it is mapped.
func hostID(m []launch.IDMap, g uint32) (uint32, bool) {
	for _, e := range m {
		if g >= e.Guest && g-e.Guest < e.Size {
			return e.Host + g - e.Guest, true
		}
	}
	return 0, false
}

func TestShareIDMap(t *testing.T) {
	def := DefaultRange
	tests := []struct {
		name  string
		guest uint32 // the guest user's id
		host  uint32 // the workspace owner's
		sub   Range
		want  []launch.IDMap
		// each guest id → host id (-1: unmapped)
		ids map[uint32]int64
	}{
		{"owner alice (1000)", 1000, 1000, def,
			[]launch.IDMap{e(0, def.Start, 1000), e(1000, 1000, 1), e(1001, def.Start+1001, 64535)},
			map[uint32]int64{0: 0x70000000, 999: 0x70000000 + 999, 998: 0x70000000 + 998, 1000: 1000, 1001: 0x70000000 + 1001, 65535: 0x70000000 + 65535, 65536: -1}},
		{"owner root: dev 1000 is host root", 1000, 0, def,
			[]launch.IDMap{e(0, def.Start, 1000), e(1000, 0, 1), e(1001, def.Start+1001, 64535)},
			map[uint32]int64{0: 0x70000000, 999: 0x70000000 + 999, 1000: 0, 65536: -1}},
		{"root's /etc/subuid range", 1001, 1001, Range{100000, 65536},
			[]launch.IDMap{e(0, 100000, 1001), e(1001, 1001, 1), e(1002, 101002, 64534)},
			map[uint32]int64{0: 100000, 1001: 1001, 1002: 101002}},
		{"guest id above the range", 70000, 70000, def,
			[]launch.IDMap{e(0, def.Start, 65536), e(70000, 70000, 1)},
			map[uint32]int64{0: 0x70000000, 65535: 0x70000000 + 65535, 65536: -1, 70000: 70000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ShareIDs(Owner{GuestUID: tt.guest, GuestGID: tt.guest, HostUID: tt.host, HostGID: tt.host}, tt.sub, tt.sub)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.UIDs, tt.want) || !reflect.DeepEqual(got.GIDs, tt.want) {
				t.Fatalf("ShareIDs = %+v, want uids and gids %+v", got, tt.want)
			}
			for g, want := range tt.ids {
				h, ok := hostID(got.UIDs, g)
				if (want < 0) == ok || (ok && int64(h) != want) {
					t.Errorf("guest %d → host %d (mapped %v), want %d", g, h, ok, want)
				}
			}
		})
	}
}

func TestShareIDMapRefuses(t *testing.T) {
	for _, tt := range []struct {
		name        string
		guest, host uint32
		sub         Range
	}{
		{"guest root as the user", 0, 1000, DefaultRange},
		{"owner inside the range", 1000, 100500, Range{100000, 65536}},
		{"empty range", 1000, 1000, Range{100000, 0}},
		{"range past 2^32-1", 1000, 1000, Range{1<<32 - 10, 65536}},
	} {
		if _, err := ShareIDs(Owner{GuestUID: tt.guest, GuestGID: 1000, HostUID: tt.host, HostGID: 1000}, tt.sub, DefaultRange); err == nil {
			t.Errorf("%s: ShareIDs succeeded", tt.name)
		}
	}
}

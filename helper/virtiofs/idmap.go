package virtiofs

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/loftd/loftd/launch"
)

// Range is a block of host ids no host user owns: root's subordinate
// range, or DefaultRange.
type Range struct{ Start, Size uint32 }

// DefaultRange is the subordinate range used as root when /etc/subuid (or
// /etc/subgid) has no line for root: 65536 ids from 0x70000000, just above
// the block systemd leaves to container managers (524288–1879048191, see
// systemd's UIDS-GIDS.md) and below 2^31, which some tools read as signed.
var DefaultRange = Range{Start: 0x70000000, Size: 65536}

// Owner is who the guest user is on the host (the workspace's owner): the
// guest uses Guest ids, files land with Host ids.
type Owner struct {
	GuestUID, GuestGID uint32
	HostUID, HostGID   uint32
}

// ShareIDs is the user namespace virtiofsd serves shares from as root:
// the guest user's ids map to the owner's, and every other guest id
// below sub.Size, root's included, to sub's id at the same offset. An id
// outside the map (above sub.Size) cannot own a file through the share.
func ShareIDs(o Owner, uids, gids Range) (*launch.ShareIDs, error) {
	u, err := idMap(o.GuestUID, o.HostUID, uids)
	if err != nil {
		return nil, fmt.Errorf("share uid map: %w", err)
	}
	g, err := idMap(o.GuestGID, o.HostGID, gids)
	if err != nil {
		return nil, fmt.Errorf("share gid map: %w", err)
	}
	return &launch.ShareIDs{UIDs: u, GIDs: g}, nil
}

// idMap maps guest → host, and [0, sub.Size) but guest → sub.
func idMap(guest, host uint32, sub Range) ([]launch.IDMap, error) {
	if guest == 0 {
		return nil, fmt.Errorf("the guest user is guest root: its id must be mapped to a subordinate id, not to host %d", host)
	}
	if sub.Size == 0 || uint64(sub.Start)+uint64(sub.Size) > 1<<32-1 {
		return nil, fmt.Errorf("subordinate range %d:%d is empty or passes 2^32-1", sub.Start, sub.Size)
	}
	if host >= sub.Start && uint64(host) < uint64(sub.Start)+uint64(sub.Size) {
		return nil, fmt.Errorf("host id %d lies in the subordinate range %d:%d (give root another range in /etc/subuid and /etc/subgid)", host, sub.Start, sub.Size)
	}
	m := []launch.IDMap{{Guest: 0, Host: sub.Start, Size: min(guest, sub.Size)}}
	m = append(m, launch.IDMap{Guest: guest, Host: host, Size: 1})
	if guest+1 < sub.Size {
		m = append(m, launch.IDMap{Guest: guest + 1, Host: sub.Start + guest + 1, Size: sub.Size - guest - 1})
	}
	return m, nil
}

// Within fits r into the ids the current user namespace maps (uidMap is
// its /proc/self/uid_map or gid_map). In the initial namespace every id is
// mapped and r is kept. In a container's or a Kubernetes pod's namespace
// (hostUsers: false: 65536 ids) r's ids may not exist, and a child map
// naming them is refused (EPERM): the largest block of mapped ids that does
// not hold avoid (the owner's id) is used instead. Those ids are the
// container's own, already apart from the host's.
func Within(r Range, uidMap string, avoid uint32) (Range, error) {
	type block struct{ start, size uint64 }
	var mapped []block
	for _, line := range strings.Split(strings.TrimSpace(uidMap), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		in, err1 := strconv.ParseUint(f[0], 10, 32)
		n, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || n == 0 {
			continue
		}
		mapped = append(mapped, block{in, n})
	}
	for _, b := range mapped {
		if uint64(r.Start) >= b.start && uint64(r.Start)+uint64(r.Size) <= b.start+b.size {
			return r, nil
		}
	}
	var best block
	for _, b := range mapped {
		// Split b around avoid.
		parts := []block{b}
		if a := uint64(avoid); a >= b.start && a < b.start+b.size {
			parts = []block{{b.start, a - b.start}, {a + 1, b.start + b.size - a - 1}}
		}
		for _, p := range parts {
			if p.size > best.size {
				best = p
			}
		}
	}
	if best.size < 2 {
		return Range{}, fmt.Errorf("this user namespace maps no block of ids for the guest's other users (uid_map %q): give it more ids", strings.TrimSpace(uidMap))
	}
	return Range{Start: uint32(best.start), Size: uint32(min(best.size, 1<<31))}, nil
}

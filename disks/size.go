package disks

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Units of size; disk sizes are always whole multiples of MiB.
const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
	TiB int64 = 1 << 40
)

// DefaultSize is the apparent size of a new disk. The file is sparse, so it
// costs only what the guest writes.
const DefaultSize = 64 * GiB

// MinSize is the smallest disk Create makes. mkfs.btrfs (v6.2) refuses a
// device below 109 MiB; 128 MiB leaves a margin and is a round number.
const MinSize = 128 * MiB

// suffixes maps the accepted suffixes, compared case-insensitively, to their
// unit. "GB" and friends are refused on purpose: they would suggest powers of
// ten, and a disk of "12GB" that is really 12 GiB is a small lie.
var suffixes = map[string]int64{
	"m": MiB, "mib": MiB,
	"g": GiB, "gib": GiB,
	"t": TiB, "tib": TiB,
}

// ParseSize parses a disk size as users write it: a bare whole number is GiB
// ("128"), or a whole number with a suffix M, MiB, G, GiB, T or TiB ("128G",
// "512MiB", "1T"). Anything else, zero, and sizes that overflow int64 are
// errors that list the accepted forms.
func ParseSize(s string) (int64, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	digits, suffix := s, ""
	if i >= 0 {
		digits, suffix = s[:i], s[i:]
	}
	unit := GiB
	if suffix != "" {
		u, ok := suffixes[strings.ToLower(suffix)]
		if !ok {
			return 0, sizeError(s, "")
		}
		unit = u
	}
	if digits == "" {
		return 0, sizeError(s, "")
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		return 0, sizeError(s, "too large; ")
	}
	if n == 0 {
		return 0, sizeError(s, "zero; ")
	}
	return n * unit, nil
}

func sizeError(s, why string) error {
	return fmt.Errorf("size %q: %swant a whole number of GiB (128) or one with a suffix M, MiB, G, GiB, T, TiB (128G, 512MiB)", s, why)
}

// FormatSize renders n bytes for messages, exactly, in the largest binary
// unit that divides it: "64 GiB", "1536 MiB", "4097 bytes".
func FormatSize(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if n != 0 && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// flagSize renders n the way --size takes it ("128G"), for the fixes that
// error messages suggest; sizes that are not whole MiB fall back to bytes.
func flagSize(n int64) string {
	switch {
	case n%TiB == 0:
		return fmt.Sprintf("%dT", n/TiB)
	case n%GiB == 0:
		return fmt.Sprintf("%dG", n/GiB)
	case n%MiB == 0:
		return fmt.Sprintf("%dM", n/MiB)
	}
	return fmt.Sprintf("%d bytes", n)
}

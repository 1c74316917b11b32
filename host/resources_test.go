package host

import (
	"testing"
)

func TestResourceDefaults(t *testing.T) {
	const gib = 1 << 30
	mem := []struct {
		total uint64
		want  int
	}{{24 * gib, 19}, {16 * gib, 12}, {1 * gib, 1}, {512 << 20, 1}, {10 * gib, 8}}
	for _, tt := range mem {
		if got := DefaultMemGiB(tt.total); got != tt.want {
			t.Errorf("DefaultMemGiB(%d GiB) = %d, want %d", tt.total/gib, got, tt.want)
		}
	}
	cpus := []struct{ host, want int }{{1, 1}, {2, 2}, {6, 6}, {7, 5}, {16, 14}, {257, 255}, {512, 255}}
	for _, tt := range cpus {
		if got := DefaultCPUs(tt.host); got != tt.want {
			t.Errorf("DefaultCPUs(%d) = %d, want %d", tt.host, got, tt.want)
		}
	}
}

package session

import (
	"testing"

	"github.com/loftd/loftd/launch"
)

func TestResourceDefaults(t *testing.T) {
	const gib = 1 << 30
	mem := []struct {
		total uint64
		want  launch.MiB
	}{{24 * gib, 19 << 10}, {16 * gib, 12 << 10}, {1 * gib, 1 << 10}, {512 << 20, 1 << 10}, {10 * gib, 8 << 10}}
	for _, tt := range mem {
		if got := DefaultMem(tt.total); got != tt.want {
			t.Errorf("DefaultMem(%d GiB) = %d MiB, want %d", tt.total/gib, got, tt.want)
		}
	}
	cpus := []struct{ host, want int }{{1, 1}, {2, 2}, {6, 6}, {7, 5}, {16, 14}, {257, 255}, {512, 255}}
	for _, tt := range cpus {
		if got := DefaultCPUs(tt.host); got != tt.want {
			t.Errorf("DefaultCPUs(%d) = %d, want %d", tt.host, got, tt.want)
		}
	}
}

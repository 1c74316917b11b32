package session

import (
	"strings"
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

func TestReadResourcesEnv(t *testing.T) {
	host, err := ReadResources(func(string) string { return "" })
	if err != nil || host.MemBytes == 0 || host.CPUs == 0 {
		t.Fatalf("ReadResources() = %+v, %v; want the host's (or its cgroup's) size", host, err)
	}
	tests := []struct {
		env     map[string]string
		mem     uint64
		cpus    int
		wantErr string
	}{
		{env: map[string]string{EnvMemory: "1073741824", EnvCPUs: "1"}, mem: 1 << 30, cpus: 1},
		// A Downward API value above the host's (no limit set: it gives the
		// node's allocatable) never raises the ceiling.
		{env: map[string]string{EnvMemory: "99999999999999999", EnvCPUs: "100000"}, mem: host.MemBytes, cpus: host.CPUs},
		{env: map[string]string{EnvMemory: "2Gi"}, wantErr: "LOFTD_MEMORY=\"2Gi\": want the memory limit in bytes"},
		{env: map[string]string{EnvMemory: "0"}, wantErr: "LOFTD_MEMORY"},
		{env: map[string]string{EnvCPUs: "500m"}, wantErr: "LOFTD_CPUS=\"500m\": want a whole number of CPUs"},
		{env: map[string]string{EnvCPUs: "-2"}, wantErr: "LOFTD_CPUS"},
	}
	for _, tt := range tests {
		got, err := ReadResources(func(k string) string { return tt.env[k] })
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ReadResources(%v) error = %v, want %q", tt.env, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.MemBytes != tt.mem || got.CPUs != tt.cpus {
			t.Errorf("ReadResources(%v) = %+v, %v; want %d bytes, %d CPUs", tt.env, got, err, tt.mem, tt.cpus)
		}
	}
}

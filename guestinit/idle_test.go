package guestinit

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestAwaitIdle(t *testing.T) {
	// Each step is one sample's ticks: busy of 100.
	for _, c := range []struct {
		name  string
		busy  []uint64
		limit time.Duration
		want  bool
		reads int // samples taken, the first one included
	}{
		{"idle at once", []uint64{0, 0}, time.Second, true, 3},
		{"busy then idle", []uint64{100, 90, 10, 0}, time.Second, true, 5},
		{"one quiet sample is not enough", []uint64{0, 100, 0, 0}, time.Second, true, 5},
		{"never idle", []uint64{100, 100, 100, 100, 100}, 500 * time.Millisecond, false, 6},
		{"just under the bar", []uint64{24, 24}, time.Second, true, 3},
		{"at the bar", []uint64{25, 25, 25}, 300 * time.Millisecond, false, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			var now cpuTimes
			reads := 0
			read := func() (cpuTimes, error) {
				if reads > 0 {
					b := c.busy[(reads-1)%len(c.busy)]
					now.total += 100
					now.idle += 100 - b
				}
				reads++
				return now, nil
			}
			var slept time.Duration
			got := awaitIdle(read, func(d time.Duration) { slept += d }, c.limit)
			if got != c.want || reads != c.reads {
				t.Errorf("awaitIdle = %v after %d reads (slept %v), want %v after %d", got, reads, slept, c.want, c.reads)
			}
		})
	}
}

func TestReadCPUTimes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stat")
	if err := os.WriteFile(p, []byte("cpu  10 2 30 400 5 6 7 0 0 0\ncpu0 5 1 15 200 2 3 3 0 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readCPUTimes(p)
	if err != nil || got != (cpuTimes{total: 460, idle: 405}) {
		t.Errorf("readCPUTimes = %+v, %v; want total 460, idle 405", got, err)
	}
	if err := os.WriteFile(p, []byte("intr 1 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readCPUTimes(p); err == nil {
		t.Error("readCPUTimes of a file without a cpu line: no error")
	}
}

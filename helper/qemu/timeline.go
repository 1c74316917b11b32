package qemu

import (
	"log/slog"
	"sync"
	"time"
)

// timeline times the phases of one run at debug level (`loftd --debug`), so
// where a boot's time goes can be read from any run (issue 13). The run's
// own goroutine marks its phases in order; the guest's milestones arrive on
// the ports' goroutines (stamp) and are logged once QEMU has exited.
type timeline struct {
	log  *slog.Logger
	last time.Time

	mu     sync.Mutex
	stamps map[string]time.Time
}

func newTimeline(log *slog.Logger) *timeline {
	now := time.Now()
	return &timeline{log: log, last: now, stamps: map[string]time.Time{}}
}

// mark logs the time since the previous mark as phase, and stamps it.
func (t *timeline) mark(phase string) {
	now := time.Now()
	t.log.Debug("qemu phase", "phase", phase, "ms", millis(now.Sub(t.last)))
	t.last = now
	t.stamp(phase)
}

// stamp records when a guest milestone happened; the first one counts.
func (t *timeline) stamp(name string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.stamps[name]; !ok {
		t.stamps[name] = time.Now()
	}
}

// span logs the time from one stamp to another, when both happened.
func (t *timeline) span(phase, from, to string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, okA := t.stamps[from]
	b, okB := t.stamps[to]
	if okA && okB {
		t.log.Debug("qemu phase", "phase", phase, "ms", millis(b.Sub(a)))
	}
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

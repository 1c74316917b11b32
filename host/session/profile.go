package session

import (
	"fmt"
	"io"
	"time"
)

// profiler records the duration of host phases for --profile.
type profiler struct {
	on     bool
	start  time.Time
	phases []phase
}

type phase struct {
	name string
	d    time.Duration
}

func newProfiler(on bool) *profiler { return &profiler{on: on, start: time.Now()} }

func (p *profiler) time(name string, fn func() error) error {
	t := time.Now()
	err := fn()
	p.add(name, time.Since(t))
	return err
}

func (p *profiler) add(name string, d time.Duration) {
	p.phases = append(p.phases, phase{name, d})
}

func (p *profiler) print(w io.Writer) {
	if !p.on {
		return
	}
	fmt.Fprintf(w, "loftd profile (host phases):\n")
	for _, ph := range p.phases {
		fmt.Fprintf(w, "  %-14s %8.1f ms\n", ph.name, float64(ph.d.Microseconds())/1000)
	}
	fmt.Fprintf(w, "  %-14s %8.1f ms\n", "total", float64(time.Since(p.start).Microseconds())/1000)
}

package guestinit

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"time"
)

// Background work that only warms a cache (Podman's prep) waits for an
// idle guest: under TCG one host thread runs every vCPU, so whatever runs
// beside the workload slows it by as much, whatever the guest's priorities
// (the vCPUs take turns). A login shell starting beside `podman images`
// took 1.1-1.6 s instead of well under one; once the workload waits (a
// prompt, a sleep, a read) the guest is idle and the prep runs then.
const (
	idleSample  = 100 * time.Millisecond
	idleSamples = 2               // in a row
	idleBusy    = 0.25            // busy share of all CPUs below which a sample is idle
	idleLimit   = 2 * time.Minute // then it runs anyway
	procStat    = "/proc/stat"
)

// cpuTimes is /proc/stat's first line: the ticks of all CPUs together,
// total and idle (idle and iowait).
type cpuTimes struct{ total, idle uint64 }

func readCPUTimes(path string) (cpuTimes, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return cpuTimes{}, err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 6 || string(f[0]) != "cpu" {
		return cpuTimes{}, errors.New(path + ": no cpu line")
	}
	var t cpuTimes
	for i, s := range f[1:] {
		n, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return cpuTimes{}, err
		}
		t.total += n
		if i == 3 || i == 4 { // idle, iowait
			t.idle += n
		}
	}
	return t, nil
}

// awaitIdle returns once read shows the guest idle for idleSamples samples
// in a row, or when limit has passed (false), or read fails (false): the
// caller then goes ahead, as it did before it waited.
func awaitIdle(read func() (cpuTimes, error), sleep func(time.Duration), limit time.Duration) bool {
	prev, err := read()
	if err != nil {
		return false
	}
	quiet := 0
	for waited := time.Duration(0); waited < limit; waited += idleSample {
		sleep(idleSample)
		cur, err := read()
		if err != nil {
			return false
		}
		dt, di := cur.total-prev.total, cur.idle-prev.idle
		prev = cur
		if dt > 0 && float64(dt-di) < idleBusy*float64(dt) {
			quiet++
		} else {
			quiet = 0
		}
		if quiet == idleSamples {
			return true
		}
	}
	return false
}

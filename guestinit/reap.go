package guestinit

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
)

// reaper is the init's one waiter for its children. As PID 1 (or a
// subreaper under libkrun) the init inherits every orphan, and one nobody
// waits for stays a zombie; a wait4(-1) loop reaps them, so any other wait
// (exec.Cmd.Wait, wait4(pid)) would race it for a status. Every child whose
// status matters (the workload, the SSH server's sessions) is started
// through Start, which registers its pid before the loop can see it end;
// the loop hands each status to its waiter and drops the orphans'.
//
// It implements sshd.Spawner.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
	running bool
	// always keeps the loop up when nobody waits (the guest init: orphans
	// end at any time); otherwise it stops once the last waiter has its
	// status, so a test binary's own exec.Cmd keep theirs.
	always bool
	kick   chan struct{} // a child started after the loop found none
}

func newReaper() *reaper {
	return &reaper{waiting: map[int]chan syscall.WaitStatus{}, kick: make(chan struct{}, 1)}
}

// initReaper is the guest init's reaper (reapOrphans is set by Main).
var initReaper = newReaper()

// reapOrphans makes the loop run for the whole life of the init.
func (r *reaper) reapOrphans() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.always = true
	r.startLoop()
}

// Start starts path and registers it; the channel receives its wait
// status once it has been reaped.
func (r *reaper) Start(path string, argv []string, attr *os.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	// Held across the start: the loop takes the lock before it looks a
	// pid up, so it cannot miss one that ended at once.
	r.mu.Lock()
	defer r.mu.Unlock()
	proc, err := os.StartProcess(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	pid := proc.Pid
	_ = proc.Release() // reaped by the loop, not through proc
	done := make(chan syscall.WaitStatus, 1)
	r.waiting[pid] = done
	r.startLoop()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return pid, done, nil
}

// startLoop runs the loop unless it runs; r.mu is held.
func (r *reaper) startLoop() {
	if !r.running {
		r.running = true
		go r.loop()
	}
}

func (r *reaper) loop() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.ECHILD):
			// No child at all: wait for the next start.
			if r.stopIfIdle() {
				return
			}
			<-r.kick
		case err != nil:
			time.Sleep(10 * time.Millisecond) // cannot happen with these arguments
		default:
			r.mu.Lock()
			done, ok := r.waiting[pid]
			delete(r.waiting, pid)
			r.mu.Unlock()
			if ok {
				done <- ws
			}
			if r.stopIfIdle() {
				return
			}
		}
	}
}

// stopIfIdle ends the loop when nobody waits and orphans are not its job.
func (r *reaper) stopIfIdle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.always || len(r.waiting) > 0 {
		return false
	}
	r.running = false
	return true
}

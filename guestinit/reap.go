package guestinit

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reaper is the init's one waiter for its children. As PID 1 (or a
// subreaper under libkrun) the init inherits every orphan, and one nobody
// waits for stays a zombie; a wait4(-1) loop reaps them, so any other wait
// (exec.Cmd.Wait, wait4(pid)) would race it for a status. Every child whose
// status matters (the workload, the SSH server's sessions) is started
// through Start, which registers its pid before the loop can see it end;
// the loop hands each status to its waiter and drops the orphans'.
//
// A child can be gated (startGated): the loop leaves it a zombie, its
// /proc entry readable, until the starter has checked it (verifyDropped).
//
// It implements sshd.Spawner.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
	gates   map[int]chan struct{} // closed when the starter is done with it
	running bool
	// always keeps the loop up when nobody waits (the guest init: orphans
	// end at any time); otherwise it stops once the last waiter has its
	// status, so a test binary's own exec.Cmd keep theirs.
	always bool
	kick   chan struct{} // a child started after the loop found none
}

func newReaper() *reaper {
	return &reaper{waiting: map[int]chan syscall.WaitStatus{}, gates: map[int]chan struct{}{},
		kick: make(chan struct{}, 1)}
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
	pid, done, release, err := r.startGated(path, argv, attr)
	if err == nil {
		release()
	}
	return pid, done, err
}

// startGated is Start for a child that stays unreaped (a zombie once it
// ended) until release is called, so its /proc entry can be read.
func (r *reaper) startGated(path string, argv []string, attr *os.ProcAttr) (int, <-chan syscall.WaitStatus, func(), error) {
	// Held across the start: the loop takes the lock before it looks a
	// pid up, so it cannot miss one that ended at once.
	r.mu.Lock()
	defer r.mu.Unlock()
	proc, err := os.StartProcess(path, argv, attr)
	if err != nil {
		return 0, nil, nil, err
	}
	pid := proc.Pid
	_ = proc.Release() // reaped by the loop, not through proc
	done := make(chan syscall.WaitStatus, 1)
	gate := make(chan struct{})
	r.waiting[pid] = done
	r.gates[pid] = gate
	r.startLoop()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.gates, pid)
			r.mu.Unlock()
			close(gate)
		})
	}
	return pid, done, release, nil
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
		// Which child ended, without reaping it yet: a gated one waits
		// for its starter.
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOWAIT, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			// No child at all: wait for the next start.
			if r.stopIfIdle() {
				return
			}
			<-r.kick
			continue
		case err != nil:
			time.Sleep(10 * time.Millisecond) // cannot happen with these arguments
			continue
		}
		pid := siginfoPid(&info)
		r.mu.Lock()
		gate := r.gates[pid]
		r.mu.Unlock()
		if gate != nil {
			<-gate
		}
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if err != nil || got != pid {
			continue // reaped by someone else (flush's reapAll at the end)
		}
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

// siginfoPid is si_pid of a SIGCHLD siginfo: after si_signo, si_errno,
// si_code and, on 64-bit, the union's alignment padding.
func siginfoPid(info *unix.Siginfo) int {
	const off = 3*4 + (unsafe.Sizeof(uintptr(0)) - 4)
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(info), off)))
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

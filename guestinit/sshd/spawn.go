package sshd

import (
	"os"
	"syscall"
)

// Spawner starts processes and reports how they end. The guest init's
// reaper implements it (one wait4(-1) loop for the whole init);
// DirectSpawner waits for each child by its pid, for a process that has
// no such loop (tests).
type Spawner interface {
	// Start starts path with argv and attr. The channel receives the
	// process's wait status once, when it has been reaped.
	Start(path string, argv []string, attr *os.ProcAttr) (pid int, done <-chan syscall.WaitStatus, err error)
}

// DirectSpawner is a Spawner that waits for each child with wait4(pid).
type DirectSpawner struct{}

// Start implements Spawner.
func (DirectSpawner) Start(path string, argv []string, attr *os.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	proc, err := os.StartProcess(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	done := make(chan syscall.WaitStatus, 1)
	go func() {
		st, err := proc.Wait()
		if err != nil {
			done <- syscall.WaitStatus(0xff << 8) // exit 255: lost
			return
		}
		done <- st.Sys().(syscall.WaitStatus)
	}()
	return proc.Pid, done, nil
}

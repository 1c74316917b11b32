// Package helper is loftd's VM helper, the hidden `loftd internal enter
// TASKDIR`: it reads the task's launch plan, picks the backend (helper/krun
// or helper/qemu, with helper/passt and helper/virtiofs), and reports a
// setup failure to its parent as an Error on the error fd. It never imports
// host or rootfs: everything it needs is in the plan.
package helper

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/loftd/loftd/internal/child"
	"github.com/loftd/loftd/launch"
)

// Error is what a helper that failed before the VM started sends its
// parent over the error fd, so the parent can print one clear message and
// exit 125 instead of guessing from an exit status.
type Error struct {
	Phase string `json:"phase"`
	Err   string `json:"error"`
	// Retry: nothing of the workload ran and stdin was not read (the
	// guest kernel died in early boot, qemu.ErrEarlyDeath), and the
	// helper, confined, could not boot again itself: the parent may
	// start the helper once more.
	Retry bool `json:"retry,omitempty"`
}

func (e *Error) Error() string { return e.Phase + ": " + e.Err }

// Helper is the state of `loftd internal enter TASKDIR`.
type Helper struct {
	TaskDir string
	ErrFile io.WriteCloser // the parent's error pipe; nil when run by hand
	Log     *slog.Logger
	// Parent is the pid of the loftd that started the helper (0: the
	// helper's parent when it starts, for a helper run by hand).
	Parent int
	// DryRun prepares the backend (library loaded and configured, kernel
	// ready) and returns 0 where it would boot: what --dry-run and the
	// launcher-overhead benchmark measure.
	DryRun bool
}

// Run boots the task's plan and returns the helper's exit status: the
// workload's, or 125 after reporting a setup failure. With the krun backend
// it does not return on success: krun_start_enter exits the process with
// the guest's status.
func (h *Helper) Run() int {
	// Die with the parent, and fail if it died before we could ask:
	// loftd started us with the same death signal, set here again on a
	// thread that lives as long as this process.
	parent := h.Parent
	if parent == 0 {
		parent = os.Getppid() // run by hand
	}
	if err := child.DieWithParent(syscall.SIGTERM, parent); err != nil {
		return h.fail("start", fmt.Errorf("parent loftd: %w", err))
	}
	p, err := launch.Read(h.TaskDir)
	if err != nil {
		return h.fail("read launch plan", err)
	}
	if p.VMM == launch.VMMKrun {
		return h.runKrun(p)
	}
	return h.runQEMU(p)
}

// fail reports err to the parent (or stderr when there is none) and
// returns the setup-failure status.
func (h *Helper) fail(phase string, err error) int {
	return h.report(&Error{Phase: phase, Err: err.Error()})
}

func (h *Helper) report(he *Error) int {
	if h.ErrFile != nil {
		if jerr := json.NewEncoder(h.ErrFile).Encode(he); jerr == nil {
			h.ErrFile.Close()
			return 125
		}
	}
	fmt.Fprintf(os.Stderr, "loftd helper: %v\n", he)
	return 125
}

// phase logs at debug level how long the helper's phase took since *t,
// and restarts *t: `loftd --debug` shows where a boot's time goes.
func (h *Helper) phase(name string, t *time.Time) {
	now := time.Now()
	h.Log.Debug("helper phase", "phase", name, "ms", float64(now.Sub(*t).Microseconds())/1000)
	*t = now
}

// stopSignals delivers the signals that end a session; the caller turns the
// first into a cancelled VM and a 128+n status.
func stopSignals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	signal.Ignore(syscall.SIGWINCH)
	return ch, func() { signal.Stop(ch) }
}

// vmCache holds what the qemu backend may reuse between runs: the PVH kernel
// and the accelerator probe's verdict; the parent names it in the plan.
// A plan without one (written by hand) shares the temporary directory's.
func vmCache(p *launch.Plan) string {
	if p.CacheDir == "" {
		return filepath.Join(os.TempDir(), "loftd-kernels")
	}
	return p.CacheDir
}

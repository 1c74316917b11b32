package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/helper"
	"github.com/loftd/loftd/internal/child"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/rootfs/inroot"
	"golang.org/x/term"
)

// forwarded are the signals the parent passes on to the helper. SIGWINCH
// lets the helper re-read the terminal size it shares with us.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGWINCH}

// signalWatch receives the session's signals from its first instant.
// Until boot takes them over, a stop signal (any of forwarded but SIGWINCH)
// cancels the setup: the phases return, their undo runs, and loftd exits
// 128+n instead of dying with a task, a mount or a lock behind.
type signalWatch struct {
	ch       chan os.Signal
	takeover chan struct{}
	done     chan struct{}
	once     sync.Once
	mu       sync.Mutex
	sig      os.Signal
}

func watchSignals(cancel context.CancelFunc) *signalWatch {
	w := &signalWatch{ch: make(chan os.Signal, 8), takeover: make(chan struct{}), done: make(chan struct{})}
	signal.Notify(w.ch, forwarded...)
	go func() {
		defer close(w.done)
		for {
			select {
			case sig := <-w.ch:
				if sig == syscall.SIGWINCH {
					continue
				}
				w.mu.Lock()
				if w.sig == nil {
					w.sig = sig
					cancel()
				}
				w.mu.Unlock()
			case <-w.takeover:
				return
			}
		}
	}()
	return w
}

// caught returns the stop signal received during setup, or nil.
func (w *signalWatch) caught() os.Signal {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sig
}

// takeOver ends the setup watch and returns its signal channel, which the
// caller then reads (boot forwards to the helper), and the stop signal
// caught before, if any.
func (w *signalWatch) takeOver() (<-chan os.Signal, os.Signal) {
	w.once.Do(func() { close(w.takeover) })
	<-w.done
	return w.ch, w.caught()
}

// stop ends the delivery of signals; the default actions apply again.
func (w *signalWatch) stop() {
	w.once.Do(func() { close(w.takeover) })
	<-w.done
	signal.Stop(w.ch)
}

func signalStatus(sig os.Signal) int {
	if n, ok := sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return ExitSetup
}

// supervisor starts the helper on a written plan and supervises it to its
// end: a session's last phase, and a maintenance VM's only one.
type supervisor struct {
	io            IO
	sigs          *signalWatch // the stop signals, forwarded once the helper runs
	debug, dryRun bool         // passed on to the helper
	taskDir       string
	root          string // the task root, where libkrun's init leaves its status
	prof          *profiler
	// started, when set, runs once the helper runs (the session records
	// the live VM and reports readiness).
	started func(done <-chan struct{})
}

// boot starts the helper on the plan, supervises it and maps its end to
// loftd's exit status: the workload's status verbatim, 128+n when the
// helper died of signal n, 125 when the helper reported a setup failure.
func (v *supervisor) boot(ctx context.Context, plan *launch.Plan) (int, error) {
	status, err := v.bootOnce(ctx, plan)
	var ee ExitError
	var he *helper.Error
	if errors.As(err, &ee) && errors.As(ee.Err, &he) && he.Retry && ctx.Err() == nil {
		// A confined helper's guest kernel died in early boot: nothing
		// ran, stdin was not read. Boot once more, keeping its logs.
		v.io.Log.Warn("the guest kernel died in early boot; booting the VM again")
		for _, name := range []string{"console.log", "qemu.log"} {
			old := filepath.Join(v.taskDir, name)
			_ = os.Rename(old, old+".boot1")
		}
		return v.bootOnce(ctx, plan)
	}
	return status, err
}

// bootOnce is one helper's run (boot).
func (v *supervisor) bootOnce(ctx context.Context, plan *launch.Plan) (int, error) {
	start := time.Now()
	exe, err := executable()
	if err != nil {
		return 0, ExitError{Status: ExitSetup, Err: fmt.Errorf("start helper: %w", err)}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return 0, ExitError{Status: ExitSetup, Err: fmt.Errorf("start helper: %w", err)}
	}
	defer errR.Close()
	args := []string{"internal", "enter", "--error-fd=3", "--parent-pid=" + strconv.Itoa(os.Getpid())}
	if v.debug {
		args = append(args, "--debug")
	}
	if v.dryRun {
		args = append(args, "--dry-run")
	}
	cmd := exec.CommandContext(ctx, exe, append(args, v.taskDir)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = v.io.Stdin, v.io.Stdout, v.io.Stderr
	cmd.ExtraFiles = []*os.File{errW}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }

	// From here on, signals go to the helper; one caught during setup
	// means the helper never starts.
	sigs, caught := v.sigs.takeOver()
	if caught != nil {
		errW.Close()
		return signalStatus(caught), nil
	}
	restore := rawTerminal(plan.Console.Interactive, v.io.Log)
	defer restore()

	// The helper (and through it the VM) must not outlive us: it gets
	// SIGTERM when we die, and stops its VM. It stays in our process
	// group.
	proc, err := child.Start("helper", cmd, child.Options{DeathSignal: syscall.SIGTERM})
	errW.Close()
	if err != nil {
		return 0, ExitError{Status: ExitSetup, Err: err}
	}
	v.prof.add("helper-start", time.Since(start))
	if v.started != nil {
		v.started(proc.Done())
	}
	helperErr := make(chan *helper.Error, 1)
	go func() { helperErr <- readHelperError(errR) }()
	for {
		select {
		case sig := <-sigs:
			v.io.Log.Debug("forward signal", "signal", sig)
			_ = proc.Signal(sig)
		case <-proc.Done():
			v.prof.add("vm", time.Since(start))
			return mapStatus(cmd.ProcessState, proc.Wait(), <-helperErr, v.guestReport(plan), v.io.Log)
		}
	}
}

func (v *supervisor) guestReport(plan *launch.Plan) guestReport {
	if (plan.VMM != launch.VMMKrun && plan.KrunInit == "") || v.dryRun {
		return guestReport{}
	}
	gr := guestReport{required: true}
	gr.data, gr.err = inroot.ReadFile(v.root, contract.StatusPath, 64)
	if c := filepath.Join(v.taskDir, "console.log"); fileExists(c) {
		gr.console = c
	}
	return gr
}

func readHelperError(r io.Reader) *helper.Error {
	var he helper.Error
	if err := json.NewDecoder(r).Decode(&he); err != nil {
		return nil
	}
	return &he
}

// mapStatus maps the helper's end to loftd's status. With gr.required
// (libkrun's init ran the guest init) the helper's exit code is not proof
// of a status, since libkrun's VMM exits 0 when the guest dies first (and
// with libkrun's init's own 126/127 when it cannot start the guest init):
// the guest init's status file decides, and without one the run fails.
func mapStatus(ps *os.ProcessState, werr error, he *helper.Error, gr guestReport, log *slog.Logger) (int, error) {
	if he != nil {
		return 0, ExitError{Status: ExitSetup, Err: he}
	}
	if ps == nil {
		return 0, ExitError{Status: ExitSetup, Err: fmt.Errorf("helper: %w", werr)}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return 0, ExitError{Status: ExitSetup, Err: fmt.Errorf("helper: %w", werr)}
	}
	if !gr.required {
		return ps.ExitCode(), nil
	}
	where := ""
	if gr.console != "" {
		where = "; the guest's console is in " + gr.console
	}
	if gr.err != nil {
		return 0, ExitError{Status: ExitSetup, Err: fmt.Errorf(
			"the VM ended (VMM exit status %d) without the guest init reporting a status: libkrun's init could not start %s (its own 126/127), or the guest crashed or panicked%s (%v)",
			ps.ExitCode(), contract.GuestInitPath, where, gr.err)}
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(gr.data)))
	if err != nil || n < 0 || n > 255 {
		return 0, ExitError{Status: ExitSetup, Err: fmt.Errorf("guest status file %s: %q is not an exit status%s", contract.StatusPath, gr.data, where)}
	}
	if n != ps.ExitCode() {
		log.Warn("the guest init's status and the VMM's exit status differ; using the guest init's", "guest", n, "vmm", ps.ExitCode())
	}
	return n, nil
}

// guestReport is the guest init's status file, read from the task root
// after the helper ended, when the backend's exit code is not proof.
type guestReport struct {
	required bool   // libkrun's init ran the guest (krun, or --krun-init)
	data     []byte // contract.StatusPath's contents
	err      error  // reading it failed (missing: no report)
	console  string // the task's console log, when there is one
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// rawTerminal puts stdin's terminal into raw mode, so keys (Ctrl-C among
// them) reach the guest, and returns the function that restores it. The
// restore runs on every return path of boot, including a panic and a
// helper that was killed.
func rawTerminal(interactive bool, log interface{ Debug(string, ...any) }) func() {
	if !interactive {
		return func() {}
	}
	fd := int(os.Stdin.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		log.Debug("raw terminal", "err", err)
		return func() {}
	}
	return func() { _ = term.Restore(fd, old) }
}

// interactive: the session gets a terminal in the guest (a pty, the host
// terminal raw) only when both stdin and stdout are terminals. With stdout
// redirected (loftd -- cmd > file) the streams stay separate and exact: a
// pty would put \r\n and echo into the file.
func interactive() bool { return isTerminal(os.Stdin) && isTerminal(os.Stdout) }

func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd()))
}

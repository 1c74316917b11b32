package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/loftd/loftd/vmm"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/loftd/loftd/launch"
	"golang.org/x/sys/unix"
)

// forwarded are the signals the parent passes on to the helper. SIGWINCH
// lets the helper re-read the terminal size it shares with us.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGWINCH}

// boot starts the helper on the plan, supervises it and maps its end to
// loftd's exit status: the workload's status verbatim, 128+n when the
// helper died of signal n, 125 when the helper reported a setup failure.
func (s *session) boot(ctx context.Context, plan *launch.Plan) (int, error) {
	start := time.Now()
	exe, err := executable()
	if err != nil {
		return 0, exitError{status: exitSetup, err: fmt.Errorf("start helper: %w", err)}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return 0, exitError{status: exitSetup, err: fmt.Errorf("start helper: %w", err)}
	}
	defer errR.Close()
	args := []string{"internal", "enter", "--error-fd=3"}
	if s.opts.Debug {
		args = append(args, "--debug")
	}
	if s.opts.DryRun {
		args = append(args, "--dry-run")
	}
	cmd := exec.CommandContext(ctx, exe, append(args, s.taskDir)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.e.stdin, s.e.stdout, s.e.stderr
	cmd.ExtraFiles = []*os.File{errW}
	// The helper (and through it the VM) must not outlive us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }

	restore := rawTerminal(plan.Console.Interactive, s.e.log)
	defer restore()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	if err := cmd.Start(); err != nil {
		errW.Close()
		return 0, exitError{status: exitSetup, err: fmt.Errorf("start helper: %w", err)}
	}
	errW.Close()
	s.prof.add("helper-start", time.Since(start))
	helperErr := make(chan *vmm.HelperError, 1)
	go func() { helperErr <- readHelperError(errR) }()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			s.e.log.Debug("forward signal", "signal", sig)
			_ = cmd.Process.Signal(sig)
		case werr := <-done:
			s.prof.add("vm", time.Since(start))
			return mapStatus(cmd.ProcessState, werr, <-helperErr)
		}
	}
}

func readHelperError(r io.Reader) *vmm.HelperError {
	var he vmm.HelperError
	if err := json.NewDecoder(r).Decode(&he); err != nil {
		return nil
	}
	return &he
}

func mapStatus(ps *os.ProcessState, werr error, he *vmm.HelperError) (int, error) {
	if he != nil {
		return 0, exitError{status: exitSetup, err: he}
	}
	if ps == nil {
		return 0, exitError{status: exitSetup, err: fmt.Errorf("helper: %w", werr)}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return 0, exitError{status: exitSetup, err: fmt.Errorf("helper: %w", werr)}
	}
	return ps.ExitCode(), nil
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
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {}
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		log.Debug("raw terminal", "err", err)
		return func() {}
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }
}

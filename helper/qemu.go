package helper

import (
	"context"
	"errors"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/loftd/loftd/helper/qemu"
	"github.com/loftd/loftd/internal/confine"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/libkrun/krunfw"
	"golang.org/x/sys/unix"
)

// QEMUConfig is the QEMU backend's configuration for booting p: the plan
// itself (the one VM model; helper/qemu turns it into QEMU's command line) and
// what only a QEMU run has, the kernel ELF and the run directory.
func QEMUConfig(p *launch.Plan, kernel, runDir string) qemu.Config {
	return qemu.Config{Plan: p, Kernel: kernel, RunDir: runDir, QEMU: p.QEMU, Virtiofsd: p.Virtiofsd, VirtiofsdFlavor: p.VirtiofsdFlavor}
}

// stdinWinSize reads the size of the terminal on stdin.
func stdinWinSize() (rows, cols uint16, ok bool) {
	ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0, false
	}
	return ws.Row, ws.Col, true
}

// runQEMU boots the plan under QEMU and returns the workload's status. A
// stop signal ends the VM (every child reaped) and gives 128+n, as the
// workload killed by that signal would.
func (h *Helper) runQEMU(p *launch.Plan) int {
	t := time.Now()
	kernel, err := krunfw.KernelELF(p.KrunfwLibrary, vmCache(p))
	if err != nil {
		return h.fail("prepare kernel", err)
	}
	h.phase("kernel", &t)
	if h.DryRun {
		return 0
	}
	cfg := QEMUConfig(p, kernel, h.TaskDir)
	cfg.CacheDir = vmCache(p)
	if cfg.Sandbox, err = confine.ParseMode(string(p.Sandbox)); err != nil {
		return h.fail("confine helper", err)
	}
	if cfg.Sandbox != confine.Off {
		// Once QEMU and virtiofsd run, before a byte from the guest.
		cfg.Confine = func() error { return h.confine(p, qemu.Confinement(cfg.Sandbox)) }
	}
	proc, vmEnd, err := h.startNet(p)
	if err != nil {
		return h.fail("start network", err)
	}
	h.phase("network", &t)
	defer func() {
		t := time.Now()
		h.stopNet(proc)
		h.phase("stop network", &t)
	}()
	if vmEnd != nil {
		// QEMU gets its own copy; ours goes once QEMU exited, so passt
		// sees the VM's end close with QEMU.
		defer vmEnd.Close()
		cfg.Net = vmEnd
	}
	cfg.Stdin, cfg.Stdout, cfg.Stderr, cfg.Log = os.Stdin, os.Stdout, os.Stderr, h.Log
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int32
	mux, keys, err := h.startLive()
	if err != nil {
		return h.fail("control channel", err)
	}
	if mux != nil {
		defer mux.Close()
		cfg.Control = func(port net.Conn) { mux.Start(port, keys) }
		mux.OnKill = func() {
			got.CompareAndSwap(0, int32(syscall.SIGKILL))
			cancel()
		}
	}
	sigs, stop := stopSignals()
	defer stop()
	if p.Console.Interactive {
		// The guest's pty follows the terminal's size: SIGWINCH comes
		// from the terminal (we are in its foreground group) and from
		// the parent, which forwards it.
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		cfg.WinSize, cfg.Resized = stdinWinSize, winch
	}
	go func() {
		select {
		case sig := <-sigs:
			got.Store(int32(sig.(syscall.Signal)))
			cancel()
		case <-ctx.Done():
		}
	}()
	status, err := qemu.Run(ctx, cfg)
	if n := got.Load(); n != 0 {
		return 128 + int(n)
	}
	if err != nil {
		return h.report(&Error{Phase: "run qemu", Err: err.Error(), Retry: errors.Is(err, qemu.ErrEarlyDeath) && cfg.Confine != nil})
	}
	return status
}

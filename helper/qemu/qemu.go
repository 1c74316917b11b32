// Package qemu is loftd's QEMU backend: it converts a launch plan (the one
// VM model, launch.Plan) into a qemu-system-x86_64 -M microvm command line
// and one virtiofsd per share, and boots the same VM libkrun would
// (libkrunfw's kernel, a virtiofs root tagged /dev/root, extra virtiofs
// shares, raw virtio-blk disks, the krun-* stdio ports), so loftd runs where
// libkrun is not packaged and CI can boot real VMs without KVM.
//
// It owns the QEMU and virtiofsd processes: it starts them, carries the
// workload's stdio over virtio-serial ports and reads the exit status the
// guest init reports on the loftd-status port, and kills and reaps every
// child on every path. It must not import host.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/internal/confine"
	"github.com/loftd/loftd/launch"
)

// Config is what one QEMU run needs besides the plan: the binaries, the
// kernel, the accelerator and where the run keeps its files.
type Config struct {
	// Plan is the VM to boot: vCPUs, memory, root, shares, disks and the
	// guest init (ExecPath, the kernel's init=).
	Plan *launch.Plan
	// QEMU and Virtiofsd are binaries; "" searches $PATH and VirtiofsdPaths.
	QEMU, Virtiofsd string
	// VirtiofsdFlavor is Virtiofsd's, as the plan carries it. Empty (a
	// test's Config), it is asked once per run, before any share starts.
	VirtiofsdFlavor launch.VirtiofsdFlavor
	// Kernel is the PVH ELF kernel (krunfw.KernelELF).
	Kernel string
	// Accel is "tcg", "kvm" or "" ($LOFTD_QEMU_ACCEL, else a probe). Any
	// other value goes to -accel as is (say "tcg,thread=multi").
	Accel string
	// RunDir holds the sockets and logs of the run (the task directory).
	RunDir string
	// CacheDir, when set, remembers the accelerator probe's verdict
	// between runs (PickAccelCached).
	CacheDir string
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	Log      *slog.Logger
	// WinSize, when set, means Stdin is the user's terminal (the guest
	// runs the workload on a pty, contract.EnvTTY): it reads the
	// terminal's size, which is sent to the guest at start and again on
	// every value from Resized (SIGWINCH).
	WinSize func() (rows, cols uint16, ok bool)
	Resized <-chan os.Signal
	// Sandbox is how QEMU is confined (sandbox.go); Confine, when set,
	// confines the caller once QEMU and virtiofsd started and before a
	// byte of the guest is read. A confined caller cannot start them
	// again: Run then boots once and returns ErrEarlyDeath, for the
	// helper's parent to start a new helper.
	Sandbox confine.Mode
	Confine func() error
	// Net, when set, is the VM's end of passt's socketpair: the guest
	// gets a virtio-net device on it (QEMU's fd after the port sockets).
	Net *os.File
	// Control, when set, gets the host end of the control port
	// (contract.PortControl) once QEMU holds the guest end; the VM's
	// control channel (helper/live) runs on it. Without it the port
	// stays open and unread.
	Control func(port net.Conn)
}

// QEMU's inherited fds, from firstPortFD on: the port sockets, Net (when
// set), one vhost-user connection per share (root first), one file per disk
// and the console log. Args names them; the runner hands them over in this
// order (runner.qemuFiles).

// netFD is Net's fd number in QEMU, or -1 without one.
func (c Config) netFD() int {
	if c.Net == nil {
		return -1
	}
	return firstPortFD + len(portNames)
}

// shareFD is the fd of share i's vhost-user connection in QEMU.
func (c Config) shareFD(i int) int {
	n := firstPortFD + len(portNames) + i
	if c.Net != nil {
		n++
	}
	return n
}

// diskFD is the first of disk i's two fds in QEMU: the disk opened
// read-only, then with the disk's own access (read-write, or read-only
// again). QEMU takes them from fd set i+1 (-add-fd, /dev/fdset/N): its
// block layer asks for a read-only fd first, and a set hands out dups of
// a matching fd, never a reopen of a path, so QEMU needs no permission on
// the file itself (it may run as another uid, see sandbox.go).
func (c Config) diskFD(i int) int { return c.shareFD(len(c.shares())) + 2*i }

// diskSet is disk i's fd set; consoleSet the console log's.
func diskSet(i int) int          { return i + 1 }
func (c Config) consoleSet() int { return len(c.Plan.Disks) + 1 }

// consoleFD is the fd of the console log in QEMU.
func (c Config) consoleFD() int { return c.diskFD(len(c.Plan.Disks)) }

// kernelFD is the kernel's fd in QEMU, which reads it as /proc/self/fd/N:
// a QEMU running as another uid need not search the cache's directories.
func (c Config) kernelFD() int { return c.consoleFD() + 1 }

// shares are the plan's virtiofs shares, the root (tag /dev/root) first.
func (c Config) shares() []launch.Share {
	return append([]launch.Share{{Tag: contract.RootTag, Path: c.Plan.Root}}, c.Plan.Shares...)
}

// Run boots the VM cfg.Plan describes and returns the status the guest init
// reported: the workload's exit code, or 128+n when signal n killed it. A VM
// that ends without reporting one is an error. Cancelling ctx ends the VM.
// Every child process is killed and reaped before Run returns.
func Run(ctx context.Context, cfg Config) (int, error) {
	t0 := time.Now()
	cfg, err := resolve(cfg)
	if err != nil {
		return 0, err
	}
	cfg.Log.Debug("qemu phase", "phase", "find binaries, accelerator", "ms", millis(time.Since(t0)))
	if err := cfg.checkDevices(); err != nil {
		return 0, err
	}
	if !cfg.balloon() {
		cfg.Log.Warn("qemu: no virtio transport left for the memory balloon; freed guest memory returns to the host only when the VM ends", "devices", cfg.devices())
	}
	for attempt := 1; ; attempt++ {
		r := &runner{cfg: cfg, log: cfg.Log}
		status, err := r.run(ctx)
		t := time.Now()
		if cerr := r.cleanup(); cerr != nil {
			r.log.Warn("qemu cleanup", "err", cerr)
		}
		r.log.Debug("qemu phase", "phase", "cleanup", "ms", millis(time.Since(t)))
		r.log.Debug("qemu run done", "status", status, "attempt", attempt)
		if !errors.Is(err, errEarlyDeath) || attempt == maxBoots || ctx.Err() != nil || cfg.Confine != nil {
			return status, err
		}
		// Nothing ran: boot again, keeping the failed boot's logs.
		r.log.Warn("the guest kernel died in early boot; booting the VM again", "attempt", attempt)
		for _, name := range []string{"console.log", "qemu.log"} {
			old := filepath.Join(cfg.RunDir, name)
			_ = os.Rename(old, old+fmt.Sprintf(".boot%d", attempt))
		}
	}
}

// maxBoots bounds the boots of one Run when the kernel dies in early boot
// (errEarlyDeath): a retry is safe then, and one is enough for a rare flake.
const maxBoots = 2

func resolve(cfg Config) (Config, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Plan == nil {
		return cfg, fmt.Errorf("qemu: Config.Plan is nil")
	}
	if err := cfg.Plan.Validate(); err != nil {
		return cfg, fmt.Errorf("qemu: %w", err)
	}
	for _, need := range []struct{ name, val string }{{"Kernel", cfg.Kernel}, {"RunDir", cfg.RunDir}} {
		if need.val == "" {
			return cfg, fmt.Errorf("qemu: Config.%s is empty", need.name)
		}
	}
	var err error
	if cfg.RunDir, err = filepath.Abs(cfg.RunDir); err != nil {
		return cfg, fmt.Errorf("qemu run dir %s: %w", cfg.RunDir, err)
	}
	if cfg.QEMU, err = FindQEMU(cfg.QEMU); err != nil {
		return cfg, err
	}
	if cfg.Virtiofsd == "" || cfg.VirtiofsdFlavor == "" {
		if cfg.Virtiofsd, cfg.VirtiofsdFlavor, err = FindVirtiofsd(cfg.Virtiofsd); err != nil {
			return cfg, err
		}
	}
	var reason string
	cfg.Accel, reason = PickAccelCached(cfg.Accel, cfg.QEMU, cfg.CacheDir)
	cfg.Log.Debug("qemu accelerator", "accel", cfg.Accel, "reason", reason)
	if msg := tcgWarning(cfg.Accel, reason); msg != "" {
		cfg.Log.Warn(msg)
	}
	return cfg, nil
}

// tcgWarning is said once per probe (a fresh state directory, a pod, a new
// QEMU or kernel): a VM under TCG is many times slower than under KVM, and
// on a Kubernetes node the cause is a missing device plugin. A cached
// verdict, or TCG asked for, says nothing.
func tcgWarning(accel, reason string) string {
	if accel != "tcg" || strings.HasPrefix(reason, "cached probe:") || reason == "asked for" || strings.HasPrefix(reason, AccelEnv) {
		return ""
	}
	return "no usable KVM (" + reason + "): the VM runs under QEMU's TCG emulation, many times slower; give this host /dev/kvm (in a pod: a KVM device plugin, see docs/kubernetes.md)"
}

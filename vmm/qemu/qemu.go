// Package qemu is loftd's QEMU backend: it boots the same VM libkrun would
// (libkrunfw's kernel, a virtiofs root tagged /dev/root, extra virtiofs
// shares, raw virtio-blk disks, the krun-* stdio ports) with
// qemu-system-x86_64 -M microvm and one virtiofsd per share, so loftd runs
// where libkrun is not packaged and CI can boot real VMs without KVM.
//
// It owns the QEMU and virtiofsd processes: it starts them, carries the
// workload's stdio over virtio-serial ports and reads the exit status the
// guest init reports on the loftd-status port, and kills and reaps every
// child on every path. It must not import host.
package qemu

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/loftd/loftd/guestinit/contract"
)

// Share is a host directory exported to the guest over virtiofs.
type Share struct {
	Tag, Path string
}

// Disk is a raw disk image attached as virtio-blk; ID is its serial, which
// the guest finds under /dev/disk/by-id or /sys/block/*/serial.
type Disk struct {
	ID, Path string
	ReadOnly bool
}

// Config describes one VM run.
type Config struct {
	// QEMU and Virtiofsd are binaries; "" searches $PATH and VirtiofsdPaths.
	QEMU, Virtiofsd string
	// Kernel is the PVH ELF kernel (krunfw.KernelELF).
	Kernel string
	// Accel is "tcg", "kvm" or "" ($LOFTD_QEMU_ACCEL, else a probe).
	Accel         string
	VCPUs, MemMiB int
	// Root is the guest's root filesystem, shared with tag /dev/root.
	Root   string
	Shares []Share
	Disks  []Disk
	// Init is the guest path of the init (contract.GuestInitPath).
	Init string
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
}

// Run boots the VM described by cfg and returns the status the guest init
// reported: the workload's exit code, or 128+n when signal n killed it. A VM
// that ends without reporting one is an error. Cancelling ctx ends the VM.
// Every child process is killed and reaped before Run returns.
func Run(ctx context.Context, cfg Config) (int, error) {
	cfg, err := resolve(cfg)
	if err != nil {
		return 0, err
	}
	r := &runner{cfg: cfg, log: cfg.Log}
	status, err := r.run(ctx)
	if cerr := r.cleanup(); cerr != nil {
		r.log.Warn("qemu cleanup", "err", cerr)
	}
	r.log.Debug("qemu run done", "status", status)
	return status, err
}

func resolve(cfg Config) (Config, error) {
	var err error
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.QEMU, err = FindQEMU(cfg.QEMU); err != nil {
		return cfg, err
	}
	if cfg.Virtiofsd, err = FindVirtiofsd(cfg.Virtiofsd); err != nil {
		return cfg, err
	}
	var reason string
	cfg.Accel, reason = PickAccelCached(cfg.Accel, cfg.QEMU, cfg.CacheDir)
	cfg.Log.Debug("qemu accelerator", "accel", cfg.Accel, "reason", reason)
	if cfg.VCPUs <= 0 {
		cfg.VCPUs = 1
	}
	if cfg.MemMiB <= 0 {
		cfg.MemMiB = 512
	}
	if cfg.Init == "" {
		cfg.Init = contract.GuestInitPath
	}
	for _, need := range []struct{ name, val string }{{"Kernel", cfg.Kernel}, {"Root", cfg.Root}, {"RunDir", cfg.RunDir}} {
		if need.val == "" {
			return cfg, fmt.Errorf("qemu: Config.%s is empty", need.name)
		}
	}
	if cfg.RunDir, err = filepath.Abs(cfg.RunDir); err != nil {
		return cfg, err
	}
	return cfg, nil
}

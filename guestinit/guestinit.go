// Package guestinit is everything that runs inside the guest: the static
// init that prepares the VM (mounts, workspace, stdio ports) and runs the
// workload, then reports its exit status to the host.
//
// It runs in a minimal VM as a CGO_ENABLED=0 static binary, so it imports
// only contract, golang.org/x/sys and the standard library: never
// host, libkrun/..., rootfs, buildah, containers/* or purego (a test checks it).
package guestinit

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/guestinit/sshd"
	"golang.org/x/sys/unix"
)

// Version is set at link time (-ldflags "-X ...guestinit.Version=...").
var Version = "dev"

const usage = `usage: loftd-guest-init enter [-- CMD ARGS...]
       loftd-guest-init version
       loftd-guest-init ` + sshd.SFTPArg + `   (the SSH server's sftp subsystem, on stdin and stdout)
`

// Main runs the guest init with os.Args-style args and returns its exit
// status. As PID 1 (the QEMU backend boots it as the kernel's init, with no
// arguments) it never returns: it reports the status and reboots the VM,
// which makes QEMU exit (the libkrunfw kernel has no ACPI, so power-off
// would only halt).
func Main(args []string) int {
	pid1 := os.Getpid() == 1
	sys := hostSystem()
	finish := sys.finish
	if pid1 && len(args) <= 1 {
		// The kernel gave no arguments: they come from /.krun_config.json.
		initReaper.reapOrphans()
		return finish(newEnter(sys, true, nil).run(), true)
	}
	if len(args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		return contract.ExitSetup
	}
	switch args[1] {
	case "version":
		fmt.Println(Version)
		return 0
	case sshd.SFTPArg:
		return sshd.SFTPMain()
	case "enter":
		cmd, err := parseEnterArgs(args[2:])
		if err != nil {
			fmt.Fprintf(os.Stderr, "guest-init: %v\n%s", err, usage)
			return finish(contract.ExitSetup, pid1)
		}
		initReaper.reapOrphans()
		return finish(newEnter(sys, false, cmd).run(), pid1)
	default:
		fmt.Fprintf(os.Stderr, "guest-init: unknown command %q\n%s", args[1], usage)
		return finish(contract.ExitSetup, pid1)
	}
}

// parseEnterArgs takes enter's arguments: nothing, or "--" and the command.
func parseEnterArgs(args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	if args[0] != "--" {
		return nil, fmt.Errorf("enter: want -- before the command, got %q", args[0])
	}
	return args[1:], nil
}

// finish ends the VM when the init is PID 1; otherwise it returns status
// for the caller to exit with (libkrun's init.krun then ends the VM). A
// guest that does not end means a loftd that does not end, so each way out
// falls back to the next: reboot (with -no-reboot QEMU exits), power off,
// and last exiting PID 1, which panics the kernel; panic=-1 on the kernel
// command line turns the panic into an immediate reboot.
func (s System) finish(status int, pid1 bool) int {
	if !pid1 {
		return status
	}
	t0 := time.Now()
	s.Sync()
	if os.Getenv(contract.EnvProfile) == "1" {
		// After the host's ack the ports may be gone: the flush's time,
		// the last guest phase of a run, goes to the console log.
		fmt.Fprintf(s.Stderr, "guest-init: flush before reboot %s\n", ms(time.Since(t0)))
	}
	err := s.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	fmt.Fprintf(s.Stderr, "guest-init: reboot: %v; powering off\n", err)
	err = s.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Fprintf(s.Stderr, "guest-init: power off: %v; exiting PID 1 (kernel panic)\n", err)
	s.Exit(status)
	return status // only with a System whose Exit returns (tests)
}

// System holds the side effects of the steps, so a test can build the step
// list (and run some steps) without root or a VM.
type System struct {
	Mount    func(source, target, fstype string, flags uintptr, data string) error
	FSMagic  func(path string) (int64, error)
	MkdirAll func(path string, perm os.FileMode) error
	ReadFile func(path string) ([]byte, error)
	// Environ and SetEnv read and replace the process environment (PID 1
	// takes it from the config).
	Environ func() []string
	SetEnv  func(env []string)
	// Sync (what the guest wrote reaches the host: flushForReboot), Reboot
	// (reboot(2) with a LINUX_REBOOT_CMD_*) and Exit end the VM.
	Sync   func()
	Reboot func(cmd int) error
	Exit   func(code int)
	// SysRoot is where /sys and /dev are looked up ("/" in the guest).
	SysRoot string
	Stderr  io.Writer
	Now     func() time.Time
}

func hostSystem() System {
	return System{
		Mount: unix.Mount,
		FSMagic: func(path string) (int64, error) {
			var st unix.Statfs_t
			if err := unix.Statfs(path, &st); err != nil {
				return 0, err
			}
			return st.Type, nil
		},
		MkdirAll: os.MkdirAll,
		ReadFile: os.ReadFile,
		Environ:  os.Environ,
		Sync:     func() { flushForReboot(os.Stderr) },
		Reboot:   unix.Reboot,
		Exit:     os.Exit,
		SetEnv: func(env []string) {
			os.Clearenv()
			for _, kv := range env {
				if name, value, ok := strings.Cut(kv, "="); ok && name != "" {
					os.Setenv(name, value)
				}
			}
		},
		SysRoot: "/",
		Stderr:  os.Stderr,
		Now:     time.Now,
	}
}

// Package passt starts passt, the user-mode network of the guest's
// virtio-net device, for one VM: on one end of a socketpair (passt's
// --fd), the other end going to the VMM. It knows passt's options and
// which releases have which (Probe), and owns the process: started with
// internal/child (a death signal), stopped and reaped by the helper on
// every path. passt also
// exits by itself once the VM's end of the pair is closed, which covers the
// helper being killed outright. It must not import host.
package passt

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/internal/child"
	"github.com/loftd/loftd/launch"
	"golang.org/x/sys/unix"
)

// Config is one VM's network.
type Config struct {
	// Path is the passt binary.
	Path string
	// Publish are the ports passt forwards (Args renders them as -t/-u
	// specs); none forwards no port.
	Publish []launch.Publish
	// Features are what Probe found in Path.
	Features Features
	// LogPath receives passt's stderr.
	LogPath string
	Log     *slog.Logger
}

// Proc is a running passt: Pid, Exited and Stop (SIGTERM, then SIGKILL
// after a grace, and the reaping) are internal/child's.
type Proc struct{ *child.Process }

// Args are passt's arguments serving the connected socket at fd. The
// guest's addresses are fixed (contract.NetAddress...): the gateway is the
// address passt maps to the host's loopback by default on every release
// (before 2024-08 as "map-gw", after as --map-host-loopback, which we pass
// explicitly when the release has it), and DNS has its own forward address,
// so the gateway mapping never swallows DNS (the breakage crun avoids with
// --no-map-gw on those old releases).
func Args(f Features, fd int, pubs []launch.Publish) []string {
	a := []string{"-f", "-q", "--fd", strconv.Itoa(fd),
		"-a", contract.NetAddress, "-n", strconv.Itoa(contract.NetPrefix), "-g", contract.NetGateway,
		"--dns-forward", contract.NetDNS,
	}
	if f.MapHostLoopback {
		a = append(a, "--map-host-loopback", contract.NetGateway)
	} else {
		// IPv4 only on releases before 2024-08: Debian 12's passt
		// (0.0~git20230309) segfaults in libc on the first TCP
		// connection to a published port once the guest has sent its
		// IPv6 router solicitation; with -4 it does not.
		a = append(a, "-4")
	}
	var tcp, udp []string
	for _, p := range pubs {
		if p.Proto == launch.UDP {
			udp = append(udp, Spec(p))
		} else {
			tcp = append(tcp, Spec(p))
		}
	}
	a = append(a, portArgs("-t", tcp)...)
	return append(a, portArgs("-u", udp)...)
}

// Spec renders a publish as a passt -t/-u spec:
// [ADDR/]HOST[-LAST]:GUEST[-LAST]. The address is the parser's canonical
// form, never the user's bytes.
func Spec(p launch.Publish) string {
	s := launch.Span(p.HostFirst, p.HostLast) + ":" + launch.Span(p.GuestFirst, p.GuestLast)
	if p.HostIP != "" {
		s = p.HostIP + "/" + s
	}
	return s
}

func portArgs(flag string, specs []string) []string {
	if len(specs) == 0 {
		return []string{flag, "none"}
	}
	var a []string
	for _, s := range specs {
		a = append(a, flag, s)
	}
	return a
}

// Start starts passt and returns it with the VM's end of the socketpair,
// which the caller hands to the VMM (and closes its own copy of once the
// VMM holds it, so passt sees the VM end).
func Start(cfg Config) (*Proc, *os.File, error) {
	if !cfg.Features.FD {
		return nil, nil, fmt.Errorf("passt %s has no --fd option (too old); install passt from 2022 or later", cfg.Path)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("passt socketpair: %w", err)
	}
	vmEnd := os.NewFile(uintptr(fds[0]), "passt-vm")
	passtEnd := os.NewFile(uintptr(fds[1]), "passt")
	defer passtEnd.Close()
	logf, err := os.OpenFile(cfg.LogPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		vmEnd.Close()
		return nil, nil, fmt.Errorf("passt log: %w", err)
	}
	defer logf.Close()
	// ExtraFiles[0] is fd 3 in passt.
	cmd := exec.Command(cfg.Path, Args(cfg.Features, 3, cfg.Publish)...)
	cmd.ExtraFiles = []*os.File{passtEnd}
	cmd.Stdout, cmd.Stderr = logf, logf
	if cfg.Log != nil {
		cfg.Log.Debug("passt start", "argv", cmd.Args)
	}
	// SIGKILL when the helper dies, in its own process group as QEMU is.
	// passt as root drops to nobody, which clears the death signal; it
	// then ends when the VM's end of its socket closes.
	p, err := child.Start("passt "+cfg.Path, cmd, child.Options{DeathSignal: syscall.SIGKILL, OwnGroup: true})
	if err != nil {
		vmEnd.Close()
		return nil, nil, err
	}
	return &Proc{p}, vmEnd, nil
}

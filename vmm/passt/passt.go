// Package passt starts passt, the user-mode network of the guest's
// virtio-net device, for one VM: on one end of a socketpair (passt's
// --fd), the other end going to the VMM. It knows passt's options and
// which releases have which (Probe), and owns the process: started with
// Pdeathsig, stopped and reaped by the helper on every path. passt also
// exits by itself once the VM's end of the pair is closed, which covers the
// helper being killed outright. It must not import host.
package passt

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/loftd/loftd/guestinit/contract"
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

// Proc is a running passt.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

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
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if cfg.Log != nil {
		cfg.Log.Debug("passt start", "argv", cmd.Args)
	}
	p, err := startLocked(cmd)
	if err != nil {
		vmEnd.Close()
		return nil, nil, fmt.Errorf("start passt %s: %w", cfg.Path, err)
	}
	return p, vmEnd, nil
}

// startLocked starts cmd from a locked thread that lives until passt is
// reaped: Pdeathsig fires when the thread that forked the child exits, and
// the Go runtime may end an idle thread. (passt as root drops to nobody,
// which clears Pdeathsig; it then ends when the VM's end of its socket
// closes.)
func startLocked(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := cmd.Start(); err != nil {
			errc <- err
			return
		}
		errc <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return p, nil
}

// Pid is passt's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether passt has ended (and its status).
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop ends passt (SIGTERM, then SIGKILL after grace) and reaps it.
func (p *Proc) Stop(grace time.Duration) error {
	if done, _ := p.Exited(); done {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill passt (pid %d): %w", p.Pid(), err)
	}
	<-p.done
	return nil
}

package helper

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/loftd/loftd/egress"
	edns "github.com/loftd/loftd/egress/dns"
	"github.com/loftd/loftd/egress/netstack"
	"github.com/loftd/loftd/internal/child"
	"github.com/loftd/loftd/launch"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// DenialsFile is the task directory's denial file: one JSON line per
// denial (egress.WriteJSON), written by the netstack as they happen and
// summarized by the parent when the run ends.
const DenialsFile = "egress-denials.jsonl"

// maxDenialLines bounds the denial file: a guest sending datagrams in a
// loop does not fill the host's disk (the summary then says "at least").
const maxDenialLines = 10000

// startNetstack starts `loftd internal netstack` for a plan in mode egress,
// on one end of a socketpair, and returns it with the VM's end. Its own
// process: a crash or a compromise of the network stack is not the VMM's,
// and it can be confined on its own.
func (h *Helper) startNetstack(p *launch.Plan) (*child.Process, *os.File, error) {
	e := p.Network.Egress
	if e == nil || e.Exe == "" {
		return nil, nil, fmt.Errorf("launch plan: network egress without its configuration")
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("netstack socketpair: %w", err)
	}
	vmEnd := os.NewFile(uintptr(fds[0]), "netstack-vm")
	nsEnd := os.NewFile(uintptr(fds[1]), "netstack")
	defer nsEnd.Close()
	args := []string{"internal", "netstack", "--fd", "3"}
	if h.Log.Enabled(context.Background(), slog.LevelDebug) {
		args = append(args, "--debug")
	}
	cmd := exec.Command(e.Exe, append(args, h.TaskDir)...)
	cmd.ExtraFiles = []*os.File{nsEnd}
	cmd.Stderr = os.Stderr
	h.Log.Debug("netstack start", "argv", cmd.Args)
	proc, err := child.Start("netstack", cmd, child.Options{DeathSignal: syscall.SIGKILL, OwnGroup: true})
	if err != nil {
		vmEnd.Close()
		return nil, nil, err
	}
	return proc, vmEnd, nil
}

// RunNetstack is `loftd internal netstack --fd N TASKDIR`: the policy
// network of the task's plan on the inherited socket fd, until the VM's
// end closes.
func RunNetstack(taskDir string, fd int, log *slog.Logger) error {
	// The helper started this process with a death signal; dropping root
	// below clears it (the kernel does on any change of uid), so it is
	// asked for again then, against this parent.
	parent := os.Getppid()
	p, err := launch.Read(taskDir)
	if err != nil {
		return err
	}
	e := p.Network.Egress
	if p.Network.Mode != launch.NetworkEgress || e == nil {
		return fmt.Errorf("netstack: the plan's network is %s, not egress", p.Network.Mode)
	}
	var rules egress.Rules
	for _, a := range e.Allow {
		if err := rules.Add(a); err != nil {
			return fmt.Errorf("netstack: %w", err)
		}
	}
	rules.AllowHost = e.AllowHost
	// gvisor-tap-vsock logs through logrus's global logger: this process
	// is the netstack alone, so its level is this process's to set.
	logrus.SetOutput(os.Stderr)
	logrus.SetLevel(logrus.PanicLevel)
	if log.Enabled(context.Background(), slog.LevelDebug) {
		logrus.SetLevel(logrus.InfoLevel)
	}
	// Without a resolver the guest still gets its network; its names
	// fail (SERVFAIL) and the warning says why.
	upstream, err := hostResolver()
	if err != nil {
		log.Warn("the guest's names will not resolve", "err", err)
	}
	denied, closeLog, err := denialLog(filepath.Join(taskDir, DenialsFile), log)
	if err != nil {
		return err
	}
	defer closeLog()
	f := os.NewFile(uintptr(fd), "vm")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("netstack: fd %d: %w", fd, err)
	}
	defer conn.Close()
	cfg := netstack.Config{Policy: egress.New(rules), Denied: denied, Upstream: upstream,
		Publish: netstackPublishes(p.Network.Publish), Log: log}
	if e.Intercept != nil {
		proxy, err := interceptor(e.Intercept, log)
		if err != nil {
			return err
		}
		cfg.Interceptor = proxy
	}
	n, err := netstack.New(cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	if err := dropPrivileges(log, parent); err != nil {
		return err
	}
	if err := confineNetstack(); err != nil {
		return err
	}
	log.Debug("netstack serving", "rules", rules.String(), "upstream", upstream)
	return n.Serve(context.Background(), conn)
}

// hostResolver is the host's first nameserver: the netstack runs in the
// host's network namespace and asks what the host asks.
func hostResolver() (string, error) {
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return "", fmt.Errorf("netstack: the host's resolver: %w", err)
	}
	defer f.Close()
	up := edns.Upstream(f)
	if up == "" {
		return "", fmt.Errorf("netstack: /etc/resolv.conf names no nameserver; add one")
	}
	return up, nil
}

// denialLog is a log that appends each denial to path (up to
// maxDenialLines) and logs it at debug level.
func denialLog(path string, log *slog.Logger) (*egress.Log, func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("netstack: denial file: %w", err)
	}
	var mu sync.Mutex
	lines := 0
	l := &egress.Log{OnDenial: func(d egress.Denial) {
		log.Debug("egress denied", "proto", d.Proto, "name", d.Name, "addr", d.Addr, "port", d.Port, "reason", d.Reason)
		mu.Lock()
		defer mu.Unlock()
		if lines > maxDenialLines {
			return
		}
		lines++
		if lines > maxDenialLines {
			if err := egress.WriteTruncated(f); err != nil {
				log.Warn("write denial", "err", err)
			}
			return
		}
		if err := egress.WriteJSON(f, d); err != nil {
			log.Warn("write denial", "err", err)
		}
	}}
	return l, func() { f.Close() }, nil
}

// netstackPublishes are the plan's publishes, one per port.
func netstackPublishes(pubs []launch.Publish) []netstack.Publish {
	var out []netstack.Publish
	for _, p := range pubs {
		for i := 0; p.HostFirst+i <= p.HostLast; i++ {
			out = append(out, netstack.Publish{UDP: p.Proto == launch.UDP, HostIP: p.HostIP,
				HostPort: uint16(p.HostFirst + i), GuestPort: uint16(p.GuestFirst + i)})
		}
	}
	return out
}

// ReadDenials reads the task's denial file into a log (an empty one when
// the file is missing: no egress network, or nothing denied).
func ReadDenials(taskDir string) (*egress.Log, error) {
	var l egress.Log
	f, err := os.OpenFile(filepath.Join(taskDir, DenialsFile), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if os.IsNotExist(err) {
		return &l, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return &l, l.ReadJSON(f)
}

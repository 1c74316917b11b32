package guestinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/guestinit/sshd"
	"golang.org/x/sys/unix"
)

// live is the SSH server of a live workspace (issue 19): every VM serves
// nested SSH connections over its control channel (the loftd-control port
// under QEMU, vsock under libkrun) for loftd exec, attach and ssh-proxy.
// It starts in the background: the workload's start waits for none of it.
type live struct {
	ready    chan struct{} // closed once srv is set, or the server is off
	srv      *sshd.Server  // nil when off (old host, no keys); read after ready
	held     *sshd.Held    // the held main session (LOFTD_HOLD), else nil
	slave    *os.File      // the held pty's slave, the main command's fds
	stopped  chan struct{} // closed when a ReqStop's kill sequence is done
	stopOnce sync.Once
}

// startLive starts the SSH server in the background, after opening the
// held session's pty when LOFTD_HOLD=1 (the main command runs on it).
func (e *enter) startLive() error {
	l := &live{ready: make(chan struct{}), stopped: make(chan struct{})}
	if e.guest.Hold {
		master, slave, err := sshd.OpenPTY()
		if err != nil {
			return fmt.Errorf("held session: %w", err)
		}
		l.slave = slave
		who := e.account.Name
		if e.guest.Root {
			who = e.rootAcct.Name
		}
		l.held = sshd.NewHeld(master, who, e.command())
	}
	e.live = l
	// Computed here, where the environment is final, not in the goroutine.
	env := e.sys.Environ()
	cfg := sshd.Config{
		User:    sessionUser(e.account, env, e.cfg.Env),
		Root:    sessionUser(e.rootAcct, env, e.cfg.Env),
		Spawner: checkedSpawner{initReaper},
		Dir:     e.workdir(),
		Exe:     "/proc/self/exe",
		Held:    l.held,
		OnStop:  l.stop,
	}
	root, pid1 := e.sys.SysRoot, e.pid1
	go l.serve(cfg, root, pid1)
	return nil
}

// checkedSpawner starts SSH sessions through the reaper and checks, as for
// the workload, that a session started as a user has no way back to root
// (verifyDropped); one that has is killed and never runs.
type checkedSpawner struct{ r *reaper }

func (c checkedSpawner) Start(path string, argv []string, attr *os.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	pid, done, release, err := c.r.startGated(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	defer release()
	if attr.Sys != nil && attr.Sys.Credential != nil && attr.Sys.Credential.Uid != 0 {
		cred := attr.Sys.Credential
		if err := verifyDropped(pid, int(cred.Uid), int(cred.Gid)); err != nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			release()
			<-done
			return 0, nil, err
		}
	}
	return pid, done, nil
}

// sessionUser is a's account for SSH sessions, with the workload's
// environment made a's.
func sessionUser(a account, env, fromHost []string) sshd.User {
	groups := make([]uint32, len(a.Groups))
	for i, g := range a.Groups {
		groups[i] = uint32(g)
	}
	runtime := fmt.Sprintf("/run/user/%d", a.UID)
	return sshd.User{Name: a.Name, UID: uint32(a.UID), GID: uint32(a.GID), Groups: groups,
		Home: a.Home, Shell: a.Shell, Env: userEnv(env, fromHost, a, runtime)}
}

// serve loads the keys, connects the control channel and serves it. A host
// without them (an older loftd) only loses live sessions: said once on the
// console, and the VM goes on.
func (l *live) serve(cfg sshd.Config, root string, pid1 bool) {
	off := func(err error) {
		consolef(root, "guest-init: live sessions off: %v", err)
		close(l.ready)
	}
	var err error
	cfg.HostKey, cfg.AuthorizedKeys, err = sshd.LoadKeys(filepath.Join(root, contract.SSHHostKeyPath),
		filepath.Join(root, contract.SSHAuthorizedKeysPath))
	if err != nil {
		off(err)
		return
	}
	conn, err := openControl(root, pid1)
	if err != nil {
		off(err)
		return
	}
	srv, err := sshd.New(cfg)
	if err != nil {
		conn.Close()
		off(err)
		return
	}
	l.srv = srv
	close(l.ready)
	if err := srv.ServeOuter(conn); err != nil {
		consolef(root, "guest-init: control channel: %v", err)
	}
}

// openControl opens the control channel: the loftd-control port under QEMU
// (the init is PID 1; the port may be named a little after boot), else
// vsock to the host (libkrun connects it to the helper's socket).
func openControl(root string, pid1 bool) (*os.File, error) {
	if !pid1 {
		fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("vsock: %w", err)
		}
		if err := unix.Connect(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_HOST, Port: contract.VsockControlPort}); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("connect vsock port %d: %w", contract.VsockControlPort, err)
		}
		return os.NewFile(uintptr(fd), "vsock-control"), nil
	}
	deadline := time.Now().Add(portWait)
	for {
		ports, err := findPorts(root)
		if err != nil {
			return nil, err
		}
		if dev, ok := ports[contract.PortControl]; ok {
			fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, &os.PathError{Op: "open", Path: dev, Err: err}
			}
			return os.NewFile(uintptr(fd), dev), nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no %s port", contract.PortControl)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// consolef writes one line to the kernel console (the VM's log), not to
// the workload's stderr.
func consolef(root, format string, args ...any) {
	f, err := os.OpenFile(filepath.Join(root, "dev/console"), os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, format+"\n", args...)
}

// stop is ReqStop: SIGHUP to the held session (its terminal hangs up),
// SIGTERM to every process but the init, up to
// GraceSeconds for them to end, SIGKILL to what is left; then the VM ends
// as soon as its main command has.
func (l *live) stop(req contract.StopRequest) {
	l.stopOnce.Do(func() {
		if l.held != nil {
			l.held.Hangup() // a login shell ignores SIGTERM
		}
		_ = syscall.Kill(-1, syscall.SIGTERM)
		deadline := time.Now().Add(time.Duration(req.GraceSeconds) * time.Second)
		for time.Now().Before(deadline) && haveChildren() {
			time.Sleep(20 * time.Millisecond)
		}
		_ = syscall.Kill(-1, syscall.SIGKILL)
		close(l.stopped)
	})
}

// haveChildren reports whether the init has a child left (the reaper
// collects those that ended; WNOWAIT leaves them to it).
func haveChildren() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return !errors.Is(err, unix.ECHILD)
}

// awaitEnd applies the VM end rule once the main command has ended: not
// detached, the VM ends when no nested connection is open; detached, on
// ReqStop, or after LOFTD_IDLE_TIMEOUT seconds with none open (0: never).
// A ReqStop ends it at once.
func (e *enter) awaitEnd() {
	l := e.live
	if l == nil {
		return
	}
	if e.guest.Detached {
		<-l.ready // it is what ends a detached VM
	}
	select {
	case <-l.ready:
	default:
		return // not up yet: nobody can be connected
	}
	if l.srv == nil {
		return
	}
	idle := time.Duration(e.guest.IdleTimeout) * time.Second
	for {
		n, changed := l.srv.Tunnels()
		var timeout <-chan time.Time
		if n == 0 {
			if !e.guest.Detached {
				return
			}
			if idle > 0 {
				timeout = time.After(idle)
			}
		}
		select {
		case <-changed:
		case <-l.stopped:
			return
		case <-timeout:
			return
		}
	}
}

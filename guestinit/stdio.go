package guestinit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loftd/loftd/contract"
	"golang.org/x/sys/unix"
)

// findPorts maps the names of the virtio-serial ports (krun-stdout...) to
// their device nodes, from /sys/class/virtio-ports/vportNpM/name.
func findPorts(sysRoot string) (map[string]string, error) {
	dirs, err := filepath.Glob(filepath.Join(sysRoot, "sys/class/virtio-ports/*"))
	if err != nil {
		return nil, err
	}
	ports := map[string]string{}
	for _, d := range dirs {
		name, err := os.ReadFile(filepath.Join(d, "name"))
		if err != nil {
			continue // the name arrives in a later control message
		}
		if n := strings.TrimSpace(string(name)); n != "" {
			ports[n] = filepath.Join(sysRoot, "dev", filepath.Base(d))
		}
	}
	return ports, nil
}

// portWait bounds how long the init waits for the ports to be named: the
// virtio-console driver learns port names from the host asynchronously.
const portWait = 2 * time.Second

// wireStdio makes the krun-* ports this process's stdin, stdout and stderr.
// Under libkrun (no loftd-status port) the workload inherits them. Under
// QEMU it gets pipes that the init relays to the ports, counting bytes (see
// relay.go): a write to a port returns before the host has the data; or,
// when the host has a terminal, a pty relayed the same way (see pty.go).
func (e *enter) wireStdio() error {
	if err := e.findPorts(); err != nil {
		return err
	}
	for fd, p := range []struct {
		name string
		flag int
	}{{contract.PortStdin, unix.O_RDONLY}, {contract.PortStdout, unix.O_WRONLY}, {contract.PortStderr, unix.O_WRONLY}} {
		dev, ok := e.ports[p.name]
		if !ok || isDevice(fd, dev) {
			// libkrun's init made the port this fd already
			// (setup_redirects), and virtio_console allows one open of
			// a port at a time: a second open would be EBUSY.
			continue
		}
		if err := dupOnto(dev, p.flag, fd); err != nil {
			return err
		}
	}
	e.stdout, e.stderr = &counter{w: os.Stdout}, &counter{w: e.sys.Stderr}
	if _, ok := e.ports[contract.PortStatus]; !ok {
		return nil
	}
	ctl, err := e.control()
	if err != nil {
		return err
	}
	if e.guest.Hold {
		// The main command runs on the held pty (live.go): the stdio
		// ports carry only the init's own messages.
		return nil
	}
	if e.guest.TTY {
		return e.wirePty(ctl)
	}
	e.relay, err = newRelay(ctl, e.stdout, e.stderr)
	return err
}

// findPorts sets e.ports once every port is named, or after portWait.
// Only the QEMU backend (PID 1) promises the ports; under libkrun they are
// there already or not at all.
func (e *enter) findPorts() error {
	deadline := e.sys.Now().Add(portWait)
	for {
		ports, err := findPorts(e.sys.SysRoot)
		if err != nil {
			return err
		}
		e.ports = ports
		if !e.fromConfig || hasAll(ports) || e.sys.Now().After(deadline) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hasAll(ports map[string]string) bool {
	for _, n := range []string{contract.PortStdin, contract.PortStdout, contract.PortStderr, contract.PortStatus} {
		if _, ok := ports[n]; !ok {
			return false
		}
	}
	return true
}

// isDevice reports whether fd is open on the device node dev.
func isDevice(fd int, dev string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(fd, &a) != nil || unix.Stat(dev, &b) != nil {
		return false
	}
	return a.Mode&unix.S_IFMT == unix.S_IFCHR && a.Rdev == b.Rdev && b.Mode&unix.S_IFMT == unix.S_IFCHR
}

func dupOnto(dev string, flag, fd int) error {
	src, err := unix.Open(dev, flag|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dev, Err: err}
	}
	defer unix.Close(src)
	if err := unix.Dup3(src, fd, 0); err != nil {
		return fmt.Errorf("dup %s onto fd %d: %w", dev, fd, err)
	}
	return nil
}

// control opens the loftd-status port once (virtio_console allows one open
// at a time) and starts reading the host's lines on it.
func (e *enter) control() (*control, error) {
	if e.ctl != nil {
		return e.ctl, nil
	}
	dev, ok := e.ports[contract.PortStatus]
	if !ok {
		return nil, fmt.Errorf("no %s port", contract.PortStatus)
	}
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dev, Err: err}
	}
	e.ctl = newControl(os.NewFile(uintptr(fd), dev))
	return e.ctl, nil
}

// report leaves the status in the root's status file (see
// writeStatusFile), then writes it with the byte counts of stdout and
// stderr to the loftd-status port when there is one (the QEMU backend) and
// waits for the host's ack; under libkrun the init's own exit status
// carries it to libkrun's init, which passes it on.
func (e *enter) report() error {
	// A failed report comes back here through fail, with 125: the file
	// follows, so it always says what this init exits with. As PID 1 the
	// kernel started this init (QEMU): no libkrun init reads the file, the
	// host takes the status from the port, and the file's two fsyncs (to
	// the host's disk, through virtiofsd) cost 12-20 ms of each run's end.
	if !e.pid1 && (e.statusFile == nil || *e.statusFile != e.status) {
		if err := writeStatusFile(e.sys.SysRoot, e.status); err != nil {
			fmt.Fprintf(e.errw(), "guest-init: %v\n", err)
		} else {
			st := e.status
			e.statusFile = &st
		}
	}
	if _, ok := e.ports[contract.PortStatus]; !ok {
		return nil
	}
	ctl, err := e.control()
	if err != nil {
		return err
	}
	return ctl.report(e.status, e.stdout.count(), e.stderr.count(), e.errw())
}

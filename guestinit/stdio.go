package guestinit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loftd/loftd/guestinit/contract"
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

// wireStdio makes the krun-* ports this process's stdin, stdout and stderr
// (so the workload inherits them). The ports are opened blocking on
// purpose: a blocking write to a virtio port returns only once the host has
// taken the data, so nothing is left in flight when the VM ends.
func (e *enter) wireStdio() error {
	deadline := e.sys.Now().Add(portWait)
	for {
		ports, err := findPorts(e.sys.SysRoot)
		if err != nil {
			return err
		}
		e.ports = ports
		// Only the QEMU backend (PID 1) promises the ports; under libkrun
		// they are there already or not at all.
		if !e.fromConfig || hasAll(ports) || e.sys.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for fd, p := range []struct {
		name string
		flag int
	}{{contract.PortStdin, unix.O_RDONLY}, {contract.PortStdout, unix.O_WRONLY}, {contract.PortStderr, unix.O_WRONLY}} {
		dev, ok := e.ports[p.name]
		if !ok {
			continue
		}
		if err := dupOnto(dev, p.flag, fd); err != nil {
			return err
		}
	}
	return nil
}

func hasAll(ports map[string]string) bool {
	for _, n := range []string{contract.PortStdin, contract.PortStdout, contract.PortStderr, contract.PortStatus} {
		if _, ok := ports[n]; !ok {
			return false
		}
	}
	return true
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

// report writes the status to the loftd-status port when there is one (the
// QEMU backend); under libkrun the init's own exit status carries it.
func (e *enter) report() error {
	dev, ok := e.ports[contract.PortStatus]
	if !ok {
		return nil
	}
	fd, err := unix.Open(dev, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dev, Err: err}
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(fmt.Sprintf("%d\n", e.status))); err != nil {
		return &os.PathError{Op: "write", Path: dev, Err: err}
	}
	return nil
}

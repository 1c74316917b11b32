package qemu

import (
	"bytes"
	"io"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// ports are the host ends of the virtio-serial ports' sockets (stdin,
// stdout, stderr, status, as portNames) and the guest ends QEMU inherits.
// Socket pairs keep each stream separate and byte-exact, and let stdin's
// EOF reach the guest: shutting down the write side makes QEMU's chardev
// see EOF and close the port, and a guest read then returns 0.
type ports struct {
	host  []*net.UnixConn
	guest []*os.File

	mu     sync.Mutex
	status bytes.Buffer
}

func newPorts() (*ports, error) {
	p := &ports{}
	for range portNames {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			p.Close()
			return nil, os.NewSyscallError("socketpair", err)
		}
		hf := os.NewFile(uintptr(fds[0]), "port-host")
		c, err := net.FileConn(hf)
		hf.Close()
		if err != nil {
			unix.Close(fds[1])
			p.Close()
			return nil, err
		}
		p.host = append(p.host, c.(*net.UnixConn))
		p.guest = append(p.guest, os.NewFile(uintptr(fds[1]), "port-guest"))
	}
	return p, nil
}

// closeGuestEnds drops this process's copies of QEMU's ends, so the host
// ends see EOF when QEMU exits.
func (p *ports) closeGuestEnds() {
	for _, f := range p.guest {
		f.Close()
	}
	p.guest = nil
}

// pump copies stdin into the guest (then signals EOF) and the guest's
// stdout, stderr and status out. The returned group ends when the output
// streams reach EOF; the stdin copy is not waited for, since a Reader
// cannot be interrupted.
func (p *ports) pump(stdin io.Reader, stdout, stderr io.Writer) *sync.WaitGroup {
	go func() {
		if stdin != nil {
			_, _ = io.Copy(p.host[0], stdin)
		}
		_ = p.host[0].CloseWrite()
	}()
	var wg sync.WaitGroup
	for i, w := range []io.Writer{stdout, stderr, &lockedWriter{&p.mu, &p.status}} {
		if w == nil {
			w = io.Discard
		}
		wg.Go(func() {
			_, _ = io.Copy(w, p.host[i+1])
			// A writer that fails (the user's stdout closed) must not
			// stall the guest on a full port: drain the rest.
			_, _ = io.Copy(io.Discard, p.host[i+1])
		})
	}
	return &wg
}

func (p *ports) statusText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status.String()
}

// close ends the host side, unblocking the copies (used when QEMU was
// stopped before the guest finished).
func (p *ports) close() {
	for _, c := range p.host {
		c.Close()
	}
}

func (p *ports) Close() error {
	p.closeGuestEnds()
	p.close()
	return nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

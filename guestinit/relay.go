package guestinit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/loftd/loftd/contract"
	"golang.org/x/sys/unix"
)

// Under the QEMU backend the workload's stdout and stderr are relayed, not
// inherited: a write to a virtio-serial port returns once the data is queued
// for the host, not once the host has it (Linux's virtio_console sends with
// nonblock=true for generic ports), and QEMU drops what is still queued when
// the guest reboots. So the workload writes into pipes, the init copies each
// pipe to its port counting the bytes, and at the end reports
// "STATUS OUTBYTES ERRBYTES" on the loftd-status port and reboots only after
// the host answered "ack" (it has that many bytes of each stream). The pipes
// also carry a broken reader back: on "close stdout" from the host the init
// closes that pipe's read end, and the workload's next write fails with
// EPIPE/SIGPIPE, as in a local pipeline.

// ackWait bounds the wait for the host's acknowledgement: a host that never
// answers must not keep the VM up forever.
const ackWait = 60 * time.Second

// counter counts the bytes written through it; its mutex keeps the init's
// own messages and the relayed stream from interleaving within a write.
type counter struct {
	mu sync.Mutex
	w  io.Writer
	n  int64
}

func (c *counter) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// splice moves what the pipe at in holds (at most a pipe's worth) to out,
// counting it, under the same lock as Write.
func (c *counter) splice(in, out int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := unix.Splice(in, nil, out, nil, 1<<20, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	if n > 0 {
		c.n += n
	}
	return int(n), err
}

// count is the number of bytes written; 0 for a nil counter (stdio not wired).
func (c *counter) count() int64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// stream is one relayed output: the workload writes w, the init copies r to
// port.
type stream struct {
	r, w      *os.File
	port      *counter
	done      chan struct{}
	closeOnce sync.Once
}

func newStream(port *counter) (*stream, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("relay pipe: %w", err)
	}
	return &stream{r: r, w: w, port: port, done: make(chan struct{})}, nil
}

// copy relays r to the port until EOF (every writer gone) or until the read
// end is closed on the host's request.
func (s *stream) copy() {
	defer close(s.done)
	defer s.closeRead()
	if s.splice() {
		return
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := s.r.Read(buf)
		if n > 0 {
			if _, werr := s.port.Write(buf[:n]); werr != nil {
				return // the port is gone: let the writer see EPIPE
			}
		}
		if err != nil {
			return
		}
	}
}

// splice moves the pipe's pages into the port in the kernel (virtio_console
// has splice_write: the pages go to the host as they are), instead of
// copying each byte into this process and out again, which under TCG cost
// as much as the workload's own writes (docs/architecture.md, Decisions).
// It reports false, having moved nothing, when the port cannot take a
// splice (the copy loop then runs); true when the stream is done: EOF, the
// read end closed on the host's request, or the port gone.
func (s *stream) splice() bool {
	out, ok := s.port.w.(*os.File)
	if !ok {
		return false
	}
	if st, err := out.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		// Only a port (a character device) ignores SPLICE_F_NONBLOCK on
		// its side and blocks until the host has room; into a pipe the
		// flag would make a full output look like an empty input.
		return false
	}
	outc, err := out.SyscallConn()
	if err != nil {
		return false
	}
	inc, err := s.r.SyscallConn()
	if err != nil {
		return false
	}
	moved, fallback := false, false
	var portErr error
	rerr := inc.Read(func(in uintptr) bool {
		for {
			var n int
			var err error
			// The port blocks until the host has room, as a write does.
			cerr := outc.Control(func(port uintptr) { n, err = s.port.splice(int(in), int(port)) })
			switch {
			case cerr != nil:
				portErr = cerr
				return true
			case n > 0:
				moved = true
				continue
			case errors.Is(err, syscall.EAGAIN):
				return false // the pipe is empty: wait for the workload
			case errors.Is(err, syscall.EINTR):
				continue
			case err != nil:
				fallback = !moved && (errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS))
				portErr = err
				return true
			}
			// 0 bytes: virtio_console returns 0 on an empty pipe rather
			// than waiting; EOF only when no writer is left (POLLHUP).
			if pipeHungUp(int(in)) {
				return true
			}
			return false
		}
	})
	// rerr is os.ErrClosed after a close request; portErr a port gone.
	_, _ = rerr, portErr
	return !fallback
}

// pipeHungUp: the pipe at fd is empty and has no writer left.
func pipeHungUp(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	return err == nil && n == 1 && pfd[0].Revents&unix.POLLHUP != 0 && pfd[0].Revents&unix.POLLIN == 0
}

// closeRead closes the read end; a pending Read returns os.ErrClosed.
func (s *stream) closeRead() { s.closeOnce.Do(func() { s.r.Close() }) }

// control is the guest end of the loftd-status port: the init writes the
// status line on it and reads the host's lines (ack, close requests).
type control struct {
	f       *os.File
	ack     chan struct{}
	ackOnce sync.Once
	streams map[string]closer // by close request; set before the workload starts
	mu      sync.Mutex
	// The last window size the host sent (CtlWinsize), sized closed once
	// one came, and resize, which applies a size to the pty (nil until
	// there is one).
	rows, cols uint16
	hasSize    bool
	sized      chan struct{}
	sizedOnce  sync.Once
	resize     func(rows, cols uint16)
}

// closer is what a close request ends: a relayed pipe, or the pty.
type closer interface{ closeRead() }

func newControl(f *os.File) *control {
	c := &control{f: f, ack: make(chan struct{}), streams: map[string]closer{}, sized: make(chan struct{})}
	go c.read()
	return c
}

func (c *control) setStream(line string, s closer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.streams[line] = s
}

// read handles the host's lines until the port goes away. virtio_console
// reads 0 bytes while the host end is not connected: that is retried.
func (c *control) read() {
	var pending []byte
	buf := make([]byte, 256)
	for {
		n, err := c.f.Read(buf)
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			c.handle(string(pending[:i]))
			pending = pending[i+1:]
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, syscall.EINTR):
			time.Sleep(20 * time.Millisecond)
		default:
			return // ENODEV: the port was unplugged
		}
	}
}

func (c *control) handle(line string) {
	if line == contract.CtlAck {
		c.ackOnce.Do(func() { close(c.ack) })
		return
	}
	if rows, cols, ok := contract.ParseWinsize(line); ok {
		// Applied under the lock, so sizes reach the pty in order.
		c.mu.Lock()
		c.rows, c.cols, c.hasSize = rows, cols, true
		if c.resize != nil {
			c.resize(rows, cols)
		}
		c.mu.Unlock()
		c.sizedOnce.Do(func() { close(c.sized) })
		return
	}
	c.mu.Lock()
	s := c.streams[line]
	c.mu.Unlock()
	if s != nil {
		s.closeRead()
	}
}

// setResize makes f apply every window size from now on, starting with the
// last one received (if any).
func (c *control) setResize(f func(rows, cols uint16)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resize = f
	if c.hasSize {
		f(c.rows, c.cols)
	}
}

// started tells the host the workload is about to start: until then the
// host holds stdin back, and a VM that ends before it may be booted again.
func (c *control) started() error {
	if _, err := fmt.Fprintln(c.f, contract.CtlStarted); err != nil {
		return fmt.Errorf("write %s: %w", contract.CtlStarted, err)
	}
	return nil
}

// report writes the status line and waits (bounded) for the host's ack.
func (c *control) report(status int, out, errb int64, stderr io.Writer) error {
	if _, err := fmt.Fprintf(c.f, "%d %d %d\n", status, out, errb); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	select {
	case <-c.ack:
	case <-time.After(ackWait):
		fmt.Fprintf(stderr, "guest-init: no acknowledgement from the host after %s; output may be incomplete\n", ackWait)
	}
	return nil
}

// relay is the pair of relayed streams.
type relay struct {
	out, err *stream
}

func newRelay(ctl *control, stdout, stderr *counter) (*relay, error) {
	out, err := newStream(stdout)
	if err != nil {
		return nil, err
	}
	errs, err := newStream(stderr)
	if err != nil {
		out.r.Close()
		out.w.Close()
		return nil, err
	}
	ctl.setStream(contract.CtlCloseStdout, out)
	ctl.setStream(contract.CtlCloseStderr, errs)
	go out.copy()
	go errs.copy()
	return &relay{out: out, err: errs}, nil
}

// drain runs once the workload has been reaped: it drops the init's write
// ends and, as PID 1, kills what the workload left running (the VM ends
// anyway, and a background process holding a pipe would keep it up), then
// waits until both pipes are copied to the end.
func (r *relay) drain(pid1 bool) {
	r.out.w.Close()
	r.err.w.Close()
	if pid1 {
		_ = syscall.Kill(-1, syscall.SIGKILL) // every process but PID 1
	}
	<-r.out.done
	<-r.err.done
}

package qemu

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/loftd/loftd/contract"
	"golang.org/x/sys/unix"
)

// ports are the host ends of the virtio-serial ports' sockets (stdin,
// stdout, stderr, status, as portNames) and the guest ends QEMU inherits.
// Socket pairs keep each stream separate and byte-exact, and let stdin's
// EOF reach the guest: shutting down the write side makes QEMU's chardev
// see EOF and close the port, and a guest read then returns 0.
//
// The status port is a control channel both ways (contract.CtlAck): the
// guest ends with "STATUS OUTBYTES ERRBYTES"; the host answers "ack" once
// it has that many bytes of each stream (the guest reboots only then: what
// QEMU still holds when the guest reboots is lost), and sends "close
// stdout" or "close stderr" when writing that stream here fails, so the
// guest's writer gets EPIPE as in a local pipeline.
type ports struct {
	host  []*net.UnixConn
	guest []*os.File

	mu        sync.Mutex
	cond      *sync.Cond
	got       [2]int64 // bytes of stdout, stderr received
	ended     [2]bool  // that stream reached EOF (or was closed)
	status    strings.Builder
	started   chan struct{} // closed when the guest says contract.CtlStarted
	startOnce sync.Once

	ctlMu sync.Mutex // one line at a time on the status port
	log   *slog.Logger
	tl    *timeline // stamps "started", "status" and "ack"; may be nil
}

// streamNames and closeLines name stdout and stderr in logs and in the
// close requests.
var (
	streamNames = [2]string{"stdout", "stderr"}
	closeLines  = [2]string{contract.CtlCloseStdout, contract.CtlCloseStderr}
)

func newPorts() (*ports, error) {
	p := &ports{log: slog.New(slog.DiscardHandler), started: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
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

// pump copies stdin into the guest (then signals EOF), the guest's stdout
// and stderr out, and answers the guest on the status port. The returned
// group ends when the output streams and the status port reach EOF; the
// stdin copy is not waited for, since a Reader cannot be interrupted.
// Stdin is read only once the guest init has started the workload: a VM
// that dies in early boot has then taken nothing from it, and can be
// booted again (Run's retry).
func (p *ports) pump(stdin io.Reader, stdout, stderr io.Writer) *sync.WaitGroup {
	go func() {
		<-p.started
		if stdin != nil {
			_, _ = io.Copy(p.host[0], stdin)
		}
		_ = p.host[0].CloseWrite()
	}()
	var wg sync.WaitGroup
	for i, w := range []io.Writer{stdout, stderr} {
		wg.Go(func() { p.copyOut(i, w) })
	}
	wg.Go(p.readStatus)
	return &wg
}

// copyOut copies stream i (0 stdout, 1 stderr) to w, counting what arrives.
// Once w fails (the user's reader is gone) it asks the guest to close the
// stream and drains the rest: the guest must not stall on a full port, and
// the count must still reach what the guest reports. A nil w discards.
func (p *ports) copyOut(i int, w io.Writer) {
	buf := make([]byte, 64<<10)
	broken := w == nil
	for {
		n, err := p.host[i+1].Read(buf)
		if n > 0 && !broken {
			if _, werr := w.Write(buf[:n]); werr != nil {
				broken = true
				p.log.Debug("qemu: output stream broken, closing it in the guest", "stream", streamNames[i], "err", werr)
				p.send(closeLines[i])
			}
		}
		p.mu.Lock()
		p.got[i] += int64(n)
		p.ended[i] = p.ended[i] || err != nil
		p.cond.Broadcast()
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// readStatus collects the guest's status line and acknowledges it once
// every byte it counts has arrived (or its stream ended).
func (p *ports) readStatus() {
	br := bufio.NewReader(p.host[3])
	for {
		line, err := br.ReadString('\n')
		if strings.TrimSpace(line) != contract.CtlStarted {
			p.mu.Lock()
			p.status.WriteString(line)
			p.mu.Unlock()
		}
		if err != nil {
			return
		}
		if strings.TrimSpace(line) == contract.CtlStarted {
			p.tl.stamp("started")
			p.startOnce.Do(func() { close(p.started) })
			continue
		}
		if _, counts, ok := parseStatus(line); ok && counts != nil {
			p.tl.stamp("status")
			p.waitFor(counts[0], counts[1])
			p.send(contract.CtlAck)
			p.tl.stamp("ack")
		}
	}
}

// waitFor blocks until out bytes of stdout and errb bytes of stderr have
// arrived, or the stream ended short of that.
func (p *ports) waitFor(out, errb int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !(p.got[0] >= out || p.ended[0]) || !(p.got[1] >= errb || p.ended[1]) {
		p.cond.Wait()
	}
	if p.got[0] < out || p.got[1] < errb {
		p.log.Warn("qemu: guest output ended short of its count", "stdout", p.got[0], "want", out, "stderr", p.got[1], "want", errb)
	}
}

// send writes one control line to the guest on the status port.
func (p *ports) send(line string) {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	if _, err := p.host[3].Write([]byte(line + "\n")); err != nil {
		p.log.Debug("qemu: status port", "send", line, "err", err)
	}
}

// followSize sends the terminal's size to the guest now (the socket holds
// it until the guest opens the port; the guest waits for it before starting
// the workload) and again on every value from resized, until stop.
func (p *ports) followSize(size func() (rows, cols uint16, ok bool), resized <-chan os.Signal) (stop func()) {
	sendSize := func() {
		if rows, cols, ok := size(); ok {
			p.send(contract.WinsizeLine(rows, cols))
		}
	}
	sendSize()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-resized:
				sendSize()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}

// parseStatus reads the guest's status line: "STATUS OUTBYTES ERRBYTES", or
// a bare "STATUS" (no counts, nothing to wait for). ok is false when the
// line is neither.
func parseStatus(text string) (status int, counts []int64, ok bool) {
	f := strings.Fields(text)
	if len(f) != 1 && len(f) != 3 {
		return 0, nil, false
	}
	status, err := strconv.Atoi(f[0])
	if err != nil || status < 0 || status > 255 {
		return 0, nil, false
	}
	for _, s := range f[1:] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, nil, false
		}
		counts = append(counts, n)
	}
	return status, counts, true
}

// hasStarted: the guest init said it was starting the workload.
func (p *ports) hasStarted() bool {
	select {
	case <-p.started:
		return true
	default:
		return false
	}
}

func (p *ports) statusText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status.String()
}

// catchSIGPIPE keeps a broken stdout from killing this process while Run
// runs: Stdout is often the process's own fd 1, and Go's runtime ends a
// process whose write to fd 1 or 2 fails with EPIPE unless SIGPIPE is
// notified. The write then just fails, and copyOut closes the stream in the
// guest.
func catchSIGPIPE() (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGPIPE)
	return func() { signal.Stop(ch) }
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

package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/helper/virtiofs"
	"github.com/loftd/loftd/internal/confine"
	"github.com/loftd/loftd/launch"
	"golang.org/x/sys/unix"
)

// runner holds one run's children and host-side sockets until cleanup.
type runner struct {
	cfg      Config
	log      *slog.Logger
	children []*proc
	closers  []io.Closer
}

func (r *runner) run(ctx context.Context) (int, error) {
	tl := newTimeline(r.log)
	if err := os.MkdirAll(r.cfg.RunDir, 0o700); err != nil {
		return 0, fmt.Errorf("qemu run dir: %w", err)
	}
	shares := r.cfg.shares()
	conns := make([]*os.File, len(shares))
	defer closeFiles(conns)
	for i, s := range shares {
		var err error
		if conns[i], err = r.startVirtiofsd(i, s); err != nil {
			return 0, err
		}
	}
	tl.mark("virtiofsd start")
	ports, err := newPorts()
	if err != nil {
		return 0, err
	}
	ports.log, ports.tl = r.log, tl
	r.closers = append(r.closers, ports)
	defer catchSIGPIPE()()
	qemu, err := r.startQEMU(conns, ports)
	if err != nil {
		return 0, err
	}
	tl.mark("qemu exec")
	if r.cfg.Control != nil {
		r.cfg.Control(ports.host[controlPort])
	}
	if r.cfg.Confine != nil {
		if err := r.cfg.Confine(); err != nil {
			return 0, err
		}
	}
	copies := ports.pump(r.cfg.Stdin, r.cfg.Stdout, r.cfg.Stderr)
	if r.cfg.WinSize != nil {
		stopSizes := ports.followSize(r.cfg.WinSize, r.cfg.Resized)
		defer stopSizes()
	}
	if err := r.wait(ctx, qemu, ports, copies); err != nil {
		return 0, err
	}
	r.log.Debug("qemu exited", "err", qemu.exitErr())
	tl.stamp("exit")
	tl.span("boot to workload start", "qemu exec", "started")
	tl.span("workload to status", "started", "status")
	tl.span("status to ack", "status", "ack")
	tl.span("ack to qemu exit", "ack", "exit")
	// QEMU's ends of the sockets are closed: the copies reach EOF. The
	// guest rebooted only after the ack, so every byte it counted is here.
	copies.Wait()
	// A guest init that failed before the workload (a bad contract, 125)
	// reported a status: that is its answer, not an early death.
	if !ports.hasStarted() && strings.TrimSpace(ports.statusText()) == "" && r.consoleEmpty() {
		// A virtiofsd that failed (it refused its share, or could not
		// start) takes QEMU down with it before the kernel prints a line:
		// that is its error to report, not an early death to boot again.
		if vfs := r.failedVirtiofsd(); vfs != nil {
			return 0, fmt.Errorf("qemu vm: %s failed before the guest ran (%s)%s", vfs.name, exitText(vfs.exitErr()), r.logTails(filepath.Base(vfs.log)))
		}
		return 0, fmt.Errorf("%w (qemu: %v)%s", errEarlyDeath, exitText(qemu.exitErr()), r.logTails())
	}
	return r.status(qemu.exitErr(), ports.statusText())
}

// errEarlyDeath: the VM ended before the guest init started the workload,
// and the kernel wrote nothing on its console: it died in early boot, before
// hvc0 was up (under TCG about 1 boot in 300 here). Nothing of the workload
// ran and stdin was not read, so Run boots it again.
var errEarlyDeath = ErrEarlyDeath

// ErrEarlyDeath is errEarlyDeath for the caller of a confined Run, which
// boots once: its caller may start the whole helper again (a confined
// helper cannot start QEMU again itself).
var ErrEarlyDeath = errors.New("qemu vm ended without reporting a status, and before the guest init started the workload: no console output (the kernel died in early boot, or the init could not run)")

func (r *runner) consoleEmpty() bool {
	fi, err := os.Stat(filepath.Join(r.cfg.RunDir, "console.log"))
	return err == nil && fi.Size() == 0
}

func (r *runner) startQEMU(conns []*os.File, p *ports) (*proc, error) {
	files, own, err := r.qemuFiles(conns, p)
	if err != nil {
		return nil, err
	}
	cmd, done, err := r.qemuCommand(files)
	if err != nil {
		closeFiles(files[own:])
		return nil, err
	}
	defer done()
	r.log.Debug("qemu start", "argv", cmd.Args)
	qemu, err := start("qemu", cmd, filepath.Join(r.cfg.RunDir, "qemu.log"))
	// QEMU holds its copies: with ours closed, virtiofsd sees QEMU's end.
	p.closeGuestEnds()
	closeFiles(files[own:])
	closeFiles(conns)
	if err != nil {
		return nil, err
	}
	r.children = append(r.children, qemu)
	return qemu, nil
}

// qemuFiles lists what QEMU inherits, in the order of Config's fds: the
// port sockets, the network, the shares' vhost-user connections, and the
// disks and the console log, which it opens: files[own:] are the caller's
// to close once QEMU has its copies.
func (r *runner) qemuFiles(conns []*os.File, p *ports) (files []*os.File, own int, err error) {
	files = append([]*os.File{}, p.guest...)
	if r.cfg.Net != nil {
		files = append(files, r.cfg.Net)
	}
	files = append(files, conns...)
	own = len(files)
	fail := func(err error) ([]*os.File, int, error) {
		closeFiles(files[own:])
		return nil, 0, err
	}
	for _, d := range r.cfg.Plan.Disks {
		flag := os.O_RDWR
		if d.ReadOnly {
			flag = os.O_RDONLY
		}
		// Read-only first, then the disk's access (Config.diskFD).
		for _, fl := range []int{os.O_RDONLY, flag} {
			f, err := os.OpenFile(d.Path, fl, 0)
			if err != nil {
				return fail(fmt.Errorf("qemu disk %s: %w", d.ID, err))
			}
			files = append(files, f)
		}
	}
	con, err := os.OpenFile(filepath.Join(r.cfg.RunDir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fail(fmt.Errorf("qemu console log: %w", err))
	}
	// Reserve the log's blocks (its size stays 0): when the guest fills
	// the host filesystem through a disk, the kernel's "I/O error" lines
	// still land, and they are how the run tells the user (host's
	// diskWriteError). QEMU appends (append=on) into the reserve.
	_ = unix.Fallocate(int(con.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, consoleReserve)
	files = append(files, con)
	kernel, err := os.Open(r.cfg.Kernel)
	if err != nil {
		return fail(fmt.Errorf("qemu kernel: %w", err))
	}
	return append(files, kernel), own, nil
}

// consoleReserve is how much of the console log is allocated up front.
const consoleReserve = 1 << 20

// wait returns once QEMU exited, or stops it and returns an error when ctx
// is done or a virtiofsd died under the running guest.
func (r *runner) wait(ctx context.Context, qemu *proc, p *ports, copies *sync.WaitGroup) error {
	select {
	case <-qemu.Done():
		return nil
	case <-ctx.Done():
		r.abort(qemu, p, copies)
		return fmt.Errorf("qemu vm: %w", ctx.Err())
	case vfs := <-r.firstExit():
		// virtiofsd also exits when QEMU does and may be reaped first: give
		// QEMU a moment before calling this a failure.
		select {
		case <-qemu.Done():
			return nil
		case <-time.After(time.Second):
			// The guest would hang on its filesystem: end the VM now.
			r.abort(qemu, p, copies)
			return fmt.Errorf("qemu vm: %s exited while the VM ran (%s)%s", vfs.name, exitText(vfs.exitErr()), r.logTails(filepath.Base(vfs.log)))
		}
	}
}

// abort stops QEMU before the guest finished and unblocks the copies.
func (r *runner) abort(qemu *proc, p *ports, copies *sync.WaitGroup) {
	r.log.Debug("qemu: stopping the VM", "pid", qemu.Pid())
	_ = qemu.Stop(2 * time.Second)
	p.close()
	copies.Wait()
}

// failedVirtiofsd is a virtiofsd that has ended with an error, or nil.
func (r *runner) failedVirtiofsd() *proc {
	for _, c := range r.children {
		if done, err := c.Exited(); c.name != "qemu" && done && err != nil {
			return c
		}
	}
	return nil
}

// firstExit delivers the first virtiofsd that exits.
func (r *runner) firstExit() <-chan *proc {
	ch := make(chan *proc, len(r.children))
	for _, c := range r.children {
		if c.name != "qemu" {
			go func() { <-c.Done(); ch <- c }()
		}
	}
	return ch
}

// status turns what the guest wrote on the status port ("STATUS OUTBYTES
// ERRBYTES", see ports) into Run's result; qemuErr is how QEMU ended.
func (r *runner) status(qemuErr error, text string) (int, error) {
	text = strings.TrimSpace(text)
	if text == "" && r.cfg.Plan != nil && r.cfg.Plan.KrunInit != "" {
		// As libkrun: its VMM exits 0 when the guest ends without a
		// status (its init's ioctl reports none under QEMU's virtiofsd).
		// The parent requires contract.StatusPath instead.
		r.log.Debug("qemu vm ended without a status on the port (krun-init mode)", "qemu", exitText(qemuErr))
		return 0, nil
	}
	if text == "" {
		return 0, fmt.Errorf("qemu vm ended without reporting a status (qemu: %v)%s",
			exitText(qemuErr), r.logTails())
	}
	n, _, ok := parseStatus(text)
	if !ok {
		return 0, fmt.Errorf("qemu vm: bad status %q on %s", text, contract.PortStatus)
	}
	if qemuErr != nil {
		r.log.Warn("qemu exited with an error after the guest reported", "status", n, "err", qemuErr)
	}
	return n, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// logTails quotes the end of the kernel console, QEMU's log and the extra
// logs named, for error messages, and says where the rest is.
func (r *runner) logTails(extra ...string) string {
	var b strings.Builder
	for _, name := range append([]string{"console.log", "qemu.log"}, extra...) {
		data, err := os.ReadFile(filepath.Join(r.cfg.RunDir, name))
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		fmt.Fprintf(&b, "\n%s:\n  %s", name, strings.Join(lines, "\n  "))
	}
	fmt.Fprintf(&b, "\n(logs in %s)", r.cfg.RunDir)
	return b.String()
}

// startVirtiofsd serves share over vhost-user on a listening socket this
// process creates and hands over as --fd (the C virtiofsd's --socket-path
// wants to write a lock under /var/run and fails rootless), and returns
// QEMU's end, connected to it.
func (r *runner) startVirtiofsd(i int, s launch.Share) (*os.File, error) {
	lf, conn, err := vhostUserSocket(r.cfg.RunDir, i)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // virtiofsd holds its own copy
	dir, err := virtiofs.OpenDir(s.Path, s.ReadOnly)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("virtiofsd %s: %w", s.Tag, err)
	}
	defer dir.Close()
	// A share the guest user writes (not the task root, which keeps the
	// image's ownership, setuid files and file capabilities) is guarded:
	// no setuid bit, file capability or device node reaches the host,
	// and as root guest ids are not host ids.
	guarded := s.Tag != contract.RootTag
	args := virtiofsdArgs(r.cfg.VirtiofsdFlavor, shareFD, s.ReadOnly, guarded)
	cmd := exec.Command(r.cfg.Virtiofsd, args...)
	cmd.ExtraFiles = []*os.File{lf, dir}
	if guarded || r.cfg.Sandbox != confine.Off && r.cfg.Sandbox != "" {
		// The root's virtiofsd goes through the wrapper too when the
		// VMM is confined: no_new_privs and a deny-list filter.
		command := func() (*exec.Cmd, func(), error) {
			return virtiofs.CommandRoot(r.cfg.Virtiofsd, []*os.File{lf, dir}, args...)
		}
		if guarded {
			command = func() (*exec.Cmd, func(), error) {
				return virtiofs.Command(r.cfg.Plan.ShareIDs, r.cfg.Virtiofsd, []*os.File{lf, dir}, args...)
			}
		}
		var done func()
		if cmd, done, err = command(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("virtiofsd %s: %w", s.Tag, err)
		}
		defer done()
	}
	c, err := start("virtiofsd "+s.Tag, cmd, filepath.Join(r.cfg.RunDir, fmt.Sprintf("virtiofsd%d.log", i)))
	if err != nil && cmd.SysProcAttr.Cloneflags&unix.CLONE_NEWUSER != 0 {
		// A container's seccomp profile or a sysctl may forbid it.
		conn.Close()
		return nil, fmt.Errorf("%w (as root loftd serves the workspace from a new user namespace, so that guest ids are not host ids: allow user namespaces here, or run loftd as a user)", err)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	r.children = append(r.children, c)
	r.log.Debug("virtiofsd start", "tag", s.Tag, "dir", s.Path, "pid", c.Pid(), "virtiofsd", r.cfg.Virtiofsd)
	return conn, nil
}

// shareFD is the share directory's fd in virtiofsd (after the socket, 3).
const shareFD = 4

// virtiofsdArgs serves the directory at fd dirFD (virtiofs.FDPath: never a
// path a user or the guest chose, which could carry a comma into -o) on
// the listening socket at fd 3; readOnly also asks the Rust virtiofsd to
// refuse writes (the mount it serves is read-only either way). A guarded
// share's virtiofsd drops CAP_SETFCAP and CAP_MKNOD: in its user namespace
// the kernel turns a file capability into a namespaced one, unless the
// guest names, as the capability's root, an id that maps to host root
// (the guest user when the workspace owner is root), which the kernel
// accepts and stores as a plain, host-effective capability. The Rust
// one keeps O_PATH fds, as the C one does, rather than file handles: its
// default (prefer) looks the share's mount up in /proc/self/mountinfo,
// where a detached read-only clone is not, and open_by_handle_at needs a
// capability its user namespace does not give. The chroot
// sandbox keeps virtiofsd one process: the namespace sandbox forks a child
// into a new pid namespace that outlives its parent by a moment, so killing
// and reaping virtiofsd by pid would not be the end of it. No write-back
// cache (-o writeback): the guest init's last flush counts on the shares
// holding no dirty pages once its processes are gone (guestinit/flush.go).
func virtiofsdArgs(flavor launch.VirtiofsdFlavor, dirFD int, readOnly, guarded bool) []string {
	dir := virtiofs.FDPath(dirFD)
	if flavor == launch.VirtiofsdRust {
		args := []string{"--fd=3", "--shared-dir", dir, "--cache", "auto", "--sandbox", "chroot", "--xattr", "--inode-file-handles=never"}
		if readOnly {
			args = append(args, "--readonly")
		}
		if guarded {
			args = append(args, "--modcaps="+virtiofs.DropCaps)
		}
		return args
	}
	args := []string{"--fd=3", "-o", "source=" + dir, "-o", "cache=auto", "-o", "sandbox=chroot", "-o", "xattr"}
	if guarded {
		args = append(args, "-o", "modcaps="+virtiofs.DropCaps)
	}
	return args
}

// closeFiles closes and forgets the files of fs that are still open.
func closeFiles(fs []*os.File) {
	for i, f := range fs {
		if f != nil {
			f.Close()
			fs[i] = nil
		}
	}
}

// cleanup stops QEMU first (it holds the vhost-user connections), then every
// virtiofsd, and closes the host-side sockets.
func (r *runner) cleanup() error {
	var errs []error
	for i := len(r.children) - 1; i >= 0; i-- {
		errs = append(errs, r.children[i].Stop(time.Second))
	}
	for _, c := range r.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

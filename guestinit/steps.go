package guestinit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loftd/loftd/contract"
	"golang.org/x/sys/unix"
)

// Step is one boot step. Desc reads like the command a person would type
// (u-root style), so the step list is data a test can compare.
type Step struct {
	Desc string
	Do   func() error
}

func (s Step) String() string { return s.Desc }

// enter is the state of one `enter` run, filled in by its steps.
type enter struct {
	sys        System
	fromConfig bool     // PID 1 under QEMU: argv and env come from the config
	pid1       bool     // orphans come here; the VM ends with this process
	cmd        []string // the workload; nil = default shell
	cfg        contract.KrunConfig
	guest      contract.Guest
	ports      map[string]string // virtio-serial port name → /dev/vportNpM
	// stdout and stderr count what reaches the ports (nil until wired);
	// relay and ctl exist under QEMU only (the loftd-status port).
	stdout, stderr *counter
	relay          *relay
	pty            *pty // instead of relay when the host has a terminal
	ctl            *control
	status         int
	statusFile     *int // what contract.StatusPath holds; nil: not written
	profile        bool
	// drop is the user the workload runs as (nil: it stays root, --root)
	// and shell that user's login shell; both set by the user step.
	drop  *account
	shell string
	// account and rootAcct are the guest user's and root's entries, the
	// accounts of SSH sessions; live is the SSH server (live.go).
	account, rootAcct account
	live              *live
	pending           []string   // profile lines waiting for stderr to be wired
	logMu             sync.Mutex // logf also runs on background steps' goroutines
}

func newEnter(sys System, fromConfig bool, cmd []string) *enter {
	return &enter{sys: sys, fromConfig: fromConfig, cmd: cmd, pid1: os.Getpid() == 1,
		profile: os.Getenv(contract.EnvProfile) == "1"}
}

// earlySteps run before the contract is known: what libkrun's init would
// have mounted, the tmpfs mounts, and reading the contract itself.
func (e *enter) earlySteps() []Step {
	steps := []Step{
		e.mountStep("proc", "proc", "/proc", "", magicProc),
		e.mountStep("sysfs", "sysfs", "/sys", "", magicSysfs),
		e.mountStep("devtmpfs", "devtmpfs", "/dev", "mode=0755", magicTmpfs),
		e.mountStep("devpts", "devpts", "/dev/pts", "newinstance,ptmxmode=0666,mode=0620,gid=5", magicDevpts),
		e.mountStep("cgroup2", "cgroup2", "/sys/fs/cgroup", "", magicCgroup2),
		e.mountStep("tmpfs", "tmpfs", "/tmp", "mode=1777", -1),
		e.mountStep("tmpfs", "tmpfs", "/run", "mode=0755", -1),
		{Desc: "read " + contract.KrunConfigPath, Do: e.readConfig},
	}
	return steps
}

// planSteps are the steps the contract asks for.
func (e *enter) planSteps() []Step {
	steps := append(e.baselineSteps(), e.networkSteps()...)
	if e.guest.Trust {
		steps = append(steps, e.trustStep())
	}
	if tag := e.guest.WorkspaceTag; tag != "" {
		steps = append(steps, e.mountStep("virtiofs", tag, contract.WorkspaceMount, "", -1))
	}
	// The user first: its home exists (0700, its own) before the volumes
	// and the disks are mounted under it.
	steps = append(steps, e.userStep())
	steps = append(steps, e.volumeSteps()...)
	// The persistent disks (/nix, containers): disksteps.go.
	steps = append(steps, e.diskSteps()...)
	// agentbox's tool state: overlays whose upper layer is on the nix disk.
	steps = append(steps, e.toolStateSteps()...)
	if e.guest.NixDisk != "" {
		steps = append(steps, e.commitNixDiskStep()) // flush.go
	}
	steps = append(steps,
		Step{Desc: fmt.Sprintf("wire stdio %s %s %s", contract.PortStdin, contract.PortStdout, contract.PortStderr), Do: e.wireStdio},
		Step{Desc: "serve ssh on the control channel (in the background)", Do: e.startLive},
		e.bootstrapStep(), // bootstrap.go: after stdio, so a failure can be said
		Step{Desc: "run " + e.runDesc(), Do: e.runWorkload},
		Step{Desc: "report status on " + contract.PortStatus, Do: e.report},
	)
	return steps
}

// runDesc names the workload before the user step has found the login
// shell.
func (e *enter) runDesc() string {
	if len(e.cmd) == 0 {
		return "$SHELL -l"
	}
	return strings.Join(e.cmd, " ")
}

// run executes every step and returns the workload's status, or
// contract.ExitSetup naming the step that failed.
func (e *enter) run() int {
	start := e.sys.Now()
	if err := e.runSteps(e.earlySteps()); err != nil {
		return e.fail(err)
	}
	e.logBootTimes()
	steps := e.planSteps()
	switch e.guest.Mode {
	case contract.ModeResize:
		steps = e.resizeSteps()
	case contract.ModeSnapshot:
		steps = e.snapshotSteps()
	}
	last := len(steps) - 1 // the report: what is written after its ack may be lost
	if err := e.runSteps(steps[:last]); err != nil {
		return e.fail(err)
	}
	e.logf("guest-init: total %s", ms(e.sys.Now().Sub(start)))
	if e.profile {
		// The Go runtime's share: each collection is translated code
		// under TCG too.
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		e.logf("guest-init: go runtime: %d GCs, %.1fms paused, %d KiB allocated, %d KiB heap",
			m.NumGC, float64(m.PauseTotalNs)/1e6, m.TotalAlloc>>10, m.HeapAlloc>>10)
	}
	if err := steps[last].Do(); err != nil {
		return e.fail(fmt.Errorf("step %s: %w", steps[last], err))
	}
	return e.status
}

// logBootTimes profiles the guest's share of a boot: when the kernel ran
// this init (its boot), and the uptime after the early steps (plus the Go
// runtime's start and those steps). The kernel's time comes from its log,
// read only when profiling.
func (e *enter) logBootTimes() {
	if !e.profile {
		return
	}
	started := ""
	if usec, ok := initExecTime(e.devPath("/dev/kmsg")); ok {
		started = fmt.Sprintf("kernel ran the init at uptime %.1fms; ", float64(usec)/1000)
	}
	if initUptime > 0 {
		// Between the kernel's exec and here: the binary paged in over
		// virtiofs and the Go runtime's start.
		started += fmt.Sprintf("package init at uptime %.1fms; ", float64(initUptime)/1e6)
	}
	if up, err := e.sys.ReadFile(e.devPath("/proc/uptime")); err == nil {
		var secs float64
		if _, err := fmt.Sscanf(string(up), "%f", &secs); err == nil {
			e.logf("guest-init: %suptime %.1fms after the early steps", started, secs*1000)
		}
	}
}

// initExecTime finds the kernel's "Run /init as init process" record in
// /dev/kmsg (one record per read: "PRI,SEQ,USEC,FLAGS;MESSAGE") and returns
// its timestamp in microseconds since boot.
func initExecTime(kmsg string) (int64, bool) {
	// Raw syscalls: an *os.File would wait in Go's poller for the next
	// record instead of returning EAGAIN at the end of the log.
	fd, err := unix.Open(kmsg, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EPIPE) { // a record was overwritten: read on
			continue
		}
		if err != nil || n <= 0 {
			return 0, false
		}
		if usec, ok := initRecord(string(buf[:n])); ok {
			return usec, true
		}
	}
}

// initRecord parses one /dev/kmsg record and returns its timestamp when it
// is the kernel's announcement that it runs the init.
func initRecord(rec string) (int64, bool) {
	head, msg, ok := strings.Cut(rec, ";")
	if !ok || !strings.HasPrefix(msg, "Run ") || !strings.Contains(msg, " as init process") {
		return 0, false
	}
	f := strings.Split(head, ",")
	if len(f) < 3 {
		return 0, false
	}
	usec, err := strconv.ParseInt(f[2], 10, 64)
	return usec, err == nil
}

func (e *enter) runSteps(steps []Step) error {
	for _, s := range steps {
		t0 := e.sys.Now()
		err := s.Do()
		e.logf("guest-init: step %s %s", s, ms(e.sys.Now().Sub(t0)))
		if err != nil {
			return fmt.Errorf("step %s: %w", s, err)
		}
	}
	return nil
}

// fail reports a setup failure: on stderr, and on the status port when
// there is one, so the host sees 125 rather than a VM that said nothing.
func (e *enter) fail(err error) int {
	if e.ports == nil && e.fromConfig {
		// As PID 1 under QEMU stderr is not the host's until the ports
		// are wired: wire it now so the message gets out (best effort,
		// /sys may not be mounted yet).
		// Waiting for every name, as wireStdio does: a failure early in
		// boot can come before the status port is named, and the host
		// would get the message but no status.
		_ = e.findPorts()
		if dev, ok := e.ports[contract.PortStderr]; ok && dupOnto(dev, unix.O_WRONLY, 2) == nil {
			// Counted, so the host waits for the message before the ack.
			e.stderr = &counter{w: e.sys.Stderr}
		}
	}
	e.flushProfile()
	fmt.Fprintf(e.errw(), "guest-init: %v\n", err)
	e.status = contract.ExitSetup
	if rerr := e.report(); rerr != nil {
		fmt.Fprintf(e.errw(), "guest-init: report status: %v\n", rerr)
	}
	return contract.ExitSetup
}

// logf prints a profile line once LOFTD_PROFILE=1 is known, holding lines
// back until stdio is wired so they reach the host's stderr.
func (e *enter) logf(format string, args ...any) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	e.pending = append(e.pending, fmt.Sprintf(format, args...))
	if e.ports != nil {
		e.flushPending()
	}
}

func (e *enter) flushProfile() {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	e.flushPending()
}

// flushPending is flushProfile with logMu held.
func (e *enter) flushPending() {
	if e.profile {
		for _, l := range e.pending {
			fmt.Fprintln(e.errw(), l)
		}
	}
	e.pending = nil
}

// errw is where the init's own messages go: through the stderr counter
// once stdio is wired, so the host waits for them too.
func (e *enter) errw() io.Writer {
	if e.stderr != nil {
		return e.stderr
	}
	return e.sys.Stderr
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
}

// initUptime is CLOCK_BOOTTIME (the uptime, without /proc) when this
// package's variables were initialised, in ns: after the Go runtime's start,
// before main. 0 if the clock could not be read.
var initUptime = func() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0
	}
	return ts.Nano()
}()

package host

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/loftd/loftd/helper"
	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/internal/confine"
	"github.com/loftd/loftd/launch"
)

// runInternal dispatches the hidden commands loftd runs itself. They should
// not be called directly.
func runInternal(e *env, args []string) error {
	if len(args) == 0 {
		return session.Usagef("internal: want a subcommand (enter, netstack, decode-plan, seccomp-audit, gen-docs)")
	}
	switch args[0] {
	case "enter":
		return runEnter(e, args[1:])
	case "decode-plan":
		return runDecodePlan(e, args[1:])
	case "seccomp-audit":
		return runSeccompAudit(e, args[1:])
	case "netstack":
		return runNetstack(e, args[1:])
	case "gen-docs":
		if len(args) != 2 {
			return session.Usagef("internal gen-docs: want the output directory (docs/commands)")
		}
		return WriteDocs(args[1])
	}
	return session.Usagef("internal: unknown subcommand %q (enter, netstack, decode-plan, seccomp-audit, gen-docs)", args[0])
}

// runEnter is the helper: `loftd internal enter [--error-fd N]
// [--parent-pid N] TASKDIR`. Its exit status is the workload's.
func runEnter(e *env, args []string) error {
	fs := e.newFlagSet("internal enter", e.Prog+" internal enter [--error-fd N] [--parent-pid N] TASKDIR")
	errFD := fs.Int("error-fd", -1, "inherited fd to report a setup failure on (JSON)")
	parent := fs.Int("parent-pid", 0, "the loftd that started this helper, which it must not outlive")
	debug := fs.Bool("debug", false, "debug logs on stderr")
	dryRun := fs.Bool("dry-run", false, "prepare the backend, then exit 0 instead of booting")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return session.Usagef("internal enter: want exactly one TASKDIR")
	}
	h := &helper.Helper{TaskDir: fs.Arg(0), Log: session.NewLogger(e.Stderr, *debug), DryRun: *dryRun, Parent: *parent}
	if *errFD >= 0 {
		h.ErrFile = os.NewFile(uintptr(*errFD), "error-fd")
	}
	return session.ExitError{Status: h.Run()}
}

// runSeccompAudit lists the system calls an audit run
// (--vmm-sandbox=audit) made outside the helper's allow-list, read from the
// kernel log (/dev/kmsg, or a saved `dmesg` / audit.log): the names to add
// to a confine.Group (internal/confine/syscalls.go).
func runSeccompAudit(e *env, args []string) error {
	fs := e.newFlagSet("internal seccomp-audit", e.Prog+" internal seccomp-audit [--comm NAME] [--pid N] [LOGFILE]")
	comm := fs.String("comm", "loftd", "the audited process's command name (the kernel's 15 bytes; \"\" for all)")
	pid := fs.Int("pid", 0, "only this process (0: all)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	var ds []confine.Denial
	var err error
	switch fs.NArg() {
	case 0:
		ds, err = confine.ReadKmsg()
	case 1:
		var f *os.File
		if f, err = os.Open(fs.Arg(0)); err != nil {
			return fmt.Errorf("seccomp-audit: %w", err)
		}
		defer f.Close()
		ds, err = confine.ReadDenials(f, "")
	default:
		return session.Usagef("internal seccomp-audit: want at most one LOGFILE")
	}
	if err != nil {
		return fmt.Errorf("seccomp-audit: %w", err)
	}
	ds = slices.DeleteFunc(ds, func(d confine.Denial) bool {
		return (*comm != "" && d.Comm != *comm) || (*pid != 0 && d.PID != *pid)
	})
	for _, name := range confine.Missing(ds) {
		fmt.Fprintf(e.Stdout, "%q,\n", name)
	}
	return nil
}

// runNetstack is the policy network of a task (network egress), which the
// helper starts on a socketpair: `loftd internal netstack --fd N TASKDIR`.
func runNetstack(e *env, args []string) error {
	fs := e.newFlagSet("internal netstack", e.Prog+" internal netstack --fd N [--debug] TASKDIR")
	fd := fs.Int("fd", -1, "inherited stream socket carrying the VM's frames (QEMU's framing)")
	debug := fs.Bool("debug", false, "debug logs on stderr, each denial included")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *fd < 3 {
		return session.Usagef("internal netstack: want --fd N (3 or more) and exactly one TASKDIR")
	}
	return helper.RunNetstack(fs.Arg(0), *fd, session.NewLogger(e.Stderr, *debug))
}

// runDecodePlan prints a task's launch plan, for debugging.
func runDecodePlan(e *env, args []string) error {
	fs := e.newFlagSet("internal decode-plan", e.Prog+" internal decode-plan TASKDIR")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return session.Usagef("internal decode-plan: want exactly one TASKDIR")
	}
	p, err := launch.Read(fs.Arg(0))
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s\n", out)
	return nil
}

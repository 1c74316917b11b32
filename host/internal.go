package host

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/loftd/loftd/helper"
	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/launch"
)

// runInternal dispatches the hidden commands loftd runs itself. They should
// not be called directly.
func runInternal(e *env, args []string) error {
	if len(args) == 0 {
		return session.Usagef("internal: want a subcommand (enter, netstack, decode-plan, gen-docs)")
	}
	switch args[0] {
	case "enter":
		return runEnter(e, args[1:])
	case "decode-plan":
		return runDecodePlan(e, args[1:])
	case "netstack":
		return runNetstack(e, args[1:])
	case "gen-docs":
		if len(args) != 2 {
			return session.Usagef("internal gen-docs: want the output directory (docs/commands)")
		}
		return WriteDocs(args[1])
	}
	return session.Usagef("internal: unknown subcommand %q (enter, netstack, decode-plan, gen-docs)", args[0])
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

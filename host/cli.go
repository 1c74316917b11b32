// Package host is loftd's command line: the commands and their flags, the
// output formats, doctor, shell completion and the generated command docs.
// A session (and a maintenance VM) is run by the engine, host/session,
// which never imports this package: it gets its streams and environment as
// a session.IO.
package host

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/loftd/loftd/host/session"
	"github.com/spf13/pflag"
)

// Version is set at build time (-ldflags "-X github.com/loftd/loftd/host.Version=…").
var Version = "dev"

// env is what a command may read of the process: swappable in tests.
type env struct {
	session.IO
	// flagSets, when set, receives every flag set a command makes: the docs
	// generator runs each command with --help and reads its flags there.
	flagSets func(usage string, fs *pflag.FlagSet)
	// captureFlags, when set, receives each flag set parse is given, and
	// parse stops the command there (shell completion, completion.go).
	captureFlags func(*pflag.FlagSet)
}

type command struct {
	name, summary string
	hidden        bool
	run           func(e *env, args []string) error
}

func commands() []command {
	return []command{
		{name: "resize", summary: "grow a workspace disk: --target nix|containers --size 128G", run: runResize},
		{name: "snapshot", summary: "save, list, restore or remove copies of a workspace disk: snapshot save|list|restore|rm --target nix|containers [NAME]", run: runSnapshot},
		{name: "reset-nix", summary: "discard and recreate the workspace's /nix disk (needs --force)", run: runResetNix},
		{name: "doctor", summary: "check KVM, libkrun, QEMU, btrfs and subordinate ids; print the fix for each failure", run: runDoctor},
		{name: "images", summary: "list the image cache", run: runImages},
		{name: "image", summary: "build the default image (image build) or import a base root tar (image import)", run: runImage},
		{name: "ps", summary: "list running tasks and workspace VMs with their sessions", run: runPs},
		{name: "exec", summary: "run a command in the workspace's running VM: exec [-i] [-t] -- CMD", run: runExec},
		{name: "attach", summary: "attach to the workspace VM's main session (detach: ctrl-p,ctrl-q)", run: runAttach},
		{name: "stop", summary: "stop the workspace VM: SIGTERM its processes, wait --time, power off", run: runStop},
		{name: "kill", summary: "end the workspace VM at once", run: runKill},
		{name: "ssh-config", summary: "print (or --install) an OpenSSH Host block for the workspace VM", run: runSSHConfig},
		{name: "ssh-proxy", summary: "ProxyCommand: carry ssh to the workspace VM, starting it if needed", hidden: false, run: runSSHProxy},
		{name: "reviews", summary: "list review runs (--review) with their state", run: runReviews},
		{name: "diff", summary: "show a review run's changes to the workspace: diff [RUN]", run: runDiff},
		{name: "apply", summary: "apply a review run's changes, all or some: apply [RUN] [PATH…]", run: runApply},
		{name: "discard", summary: "drop a review run's changes: discard [RUN]", run: runDiscard},
		{name: "gc", summary: "remove stale task state (and, with --images, unused images)", run: runGC},
		{name: "version", summary: "print the version", run: runVersion},
		{name: "completion", summary: "print a shell completion script: completion bash|zsh|fish", run: runCompletion},
		{name: "__complete", summary: "completion candidates for the shell scripts", hidden: true, run: runComplete},
		{name: "internal", summary: "helpers loftd runs itself; not for direct use", hidden: true, run: runInternal},
	}
}

// Main runs loftd (profile "loftd") or agentbox (profile "agentbox") with
// args (without the program name) and returns the process exit status.
func Main(profile string, args []string) int {
	e := &env{IO: session.IO{Prog: profile, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}}
	e.Log = session.NewLogger(e.Stderr, false)
	return e.main(args)
}

func (e *env) main(args []string) int {
	if !cgoEnabled {
		fmt.Fprintf(e.Stderr, "%s: this binary was built without cgo; Buildah's storage needs it (rebuild with CGO_ENABLED=1, see README)\n", e.Prog)
		return session.ExitSetup
	}
	var err error
	var status int
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, ok := e.lookup(args[0])
		if !ok {
			err = session.Usagef("unknown command %q (to run it in a VM: %s -- %s)", args[0], e.Prog, strings.Join(args, " "))
		} else {
			err = cmd.run(e, args[1:])
		}
	} else {
		status, err = e.session(args)
	}
	return e.finish(status, err)
}

// session parses the flags of a VM session and runs it (host/session).
func (e *env) session(args []string) (int, error) {
	fs := e.newFlagSet(e.Prog, "")
	fs.SetInterspersed(false)
	var r session.Flags
	r.Register(fs)
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { e.rootUsage(fs) }
	if err := e.parse(fs, args); err != nil {
		return 0, err
	}
	if *version {
		return 0, runVersion(e, nil)
	}
	rest := fs.Args()
	if len(rest) > 0 && fs.ArgsLenAtDash() != 0 {
		return 0, session.Usagef("unknown command %q (to run it in a VM: %s -- %s)", rest[0], e.Prog, strings.Join(rest, " "))
	}
	cfg, err := session.ReadConfig(e.IO)
	if err != nil {
		return 0, err
	}
	opts, err := r.Options(fs, cfg, rest)
	if err != nil {
		return 0, session.Usagef("%v", err)
	}
	opts.Profile = e.Prog
	return e.startOrJoin(args, opts, cfg)
}

func (e *env) lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// finish prints err the way its kind asks and picks the exit status.
func (e *env) finish(status int, err error) int {
	var exit session.ExitError
	switch {
	case err == nil:
		return status
	case errors.Is(err, pflag.ErrHelp):
		return session.ExitOK
	case errors.Is(err, session.ErrUsage):
		fmt.Fprintf(e.Stderr, "%s: %v\nRun '%s --help' for usage.\n", e.Prog, err, e.Prog)
		return session.ExitUsage
	case errors.As(err, &exit):
		if exit.Err != nil {
			fmt.Fprintf(e.Stderr, "%s: %v\n", e.Prog, exit.Err)
		}
		return exit.Status
	default:
		fmt.Fprintf(e.Stderr, "%s: %v\n", e.Prog, err)
		return session.ExitFail
	}
}

// newFlagSet returns a flag set whose errors are usage errors and whose
// --help prints a usage text headed by usage.
func (e *env) newFlagSet(name, usage string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(e.Stdout, "Usage: %s\n\nFlags:\n%s", usage, fs.FlagUsages())
	}
	if e.flagSets != nil {
		e.flagSets(usage, fs)
	}
	return fs
}

// parse parses args into fs; --help prints usage and returns pflag.ErrHelp.
// pflag itself calls fs.Usage before returning ErrHelp, so it is not
// printed here again.
func (e *env) parse(fs *pflag.FlagSet, args []string) error {
	if e.captureFlags != nil {
		e.captureFlags(fs)
		return errFlagsCaptured
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return session.Usagef("%v", err)
	}
	return nil
}

func (e *env) rootUsage(fs *pflag.FlagSet) {
	fmt.Fprintf(e.Stdout, "Usage:\n  %s [flags] [-- CMD ARGS…]   run CMD (default: a login shell) in a fresh microVM\n  %s COMMAND [flags]\n\nCommands:\n", e.Prog, e.Prog)
	for _, c := range commands() {
		if !c.hidden {
			fmt.Fprintf(e.Stdout, "  %-10s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintf(e.Stdout, "\nFlags:\n%s", fs.FlagUsages())
	fmt.Fprintf(e.Stdout, "\nThe workload's exit status is %s's; 125 means loftd or the guest init failed to set up.\n", e.Prog)
}

func runVersion(e *env, args []string) error {
	fs := e.newFlagSet("version", e.Prog+" version")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s %s\n", e.Prog, Version)
	return nil
}

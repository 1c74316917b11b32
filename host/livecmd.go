package host

import (
	"fmt"
	"os"
	"time"

	"github.com/loftd/loftd/helper/live"
	"github.com/loftd/loftd/host/state"
	"golang.org/x/sys/unix"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/host/liveclient"
	"github.com/loftd/loftd/host/session"
)

// startOrJoin runs a session (a VM of its own, or joined to the
// workspace's running one), or starts the workspace VM in the background:
//   - the background owner (session.BackgroundEnv) runs the VM with its
//     main session held for attach;
//   - -d spawns that owner and returns once the VM is ready;
//   - with no command on a terminal, the VM is started (or found) with its
//     login shell held, and this loftd attaches to it, so that the detach
//     keys leave it running;
//   - otherwise the session runs, joining a running VM (session.Start).
func (e *env) startOrJoin(args []string, opts *session.Options, cfg *session.Config) (int, error) {
	if mode := e.Getenv(session.BackgroundEnv); mode != "" {
		opts.Background, opts.ReadyFD, opts.Hold = true, 3, true
		opts.Detach = mode == session.BackgroundDetached
		return session.Start(e.IO, opts, cfg)
	}
	holdStart := len(opts.Command) == 0 && liveclient.StdinTerminal() != nil
	if opts.DryRun || (!opts.Detach && !holdStart) {
		return session.Start(e.IO, opts, cfg)
	}
	ws, v, err := session.LiveWorkspace(e.IO, cfg, opts.Workspace)
	if err != nil {
		return 0, session.ExitError{Status: session.ExitSetup, Err: err}
	}
	if v == nil {
		e.Log.Debug("no VM runs for this workspace: starting one in the background", "detach", opts.Detach)
		mode := session.BackgroundHold
		if opts.Detach {
			mode = session.BackgroundDetached
		}
		if err := session.SpawnOwner(e.IO, args, mode); err != nil {
			return 0, err
		}
		if v, err = session.FindLive(ws); err != nil || v == nil {
			return 0, session.ExitError{Status: session.ExitSetup, Err: fmt.Errorf("the workspace VM started but cannot be found (%v)", err)}
		}
	} else {
		e.Log.Debug("joining the workspace's running VM", "task", v.Task, "owner", v.PID, "detached", v.Detached)
	}
	if opts.Detach {
		return 0, nil // `attach`, `exec` and ssh reach it from here on
	}
	keys, err := session.WorkspaceKeys(ws)
	if err != nil {
		return 0, session.ExitError{Status: session.ExitSetup, Err: err}
	}
	user := contract.DefaultUser
	if opts.Root {
		user = "root"
	}
	return session.Attach(e.IO, ws, v, keys, user, cfg.Live.DetachKeys, "")
}

// liveVM finds the running VM of the workspace named by the first of
// args ("" : the current directory's), or says how to start one.
func (e *env) liveVM(cmd string, args []string) (*session.Config, state.Workspace, *state.LiveVM, error) {
	if len(args) > 1 {
		return nil, state.Workspace{}, nil, session.Usagef("%s: want at most one WORKSPACE", cmd)
	}
	dir := ""
	if len(args) == 1 {
		dir = args[0]
	}
	cfg, err := session.ReadConfig(e.IO)
	if err != nil {
		return nil, state.Workspace{}, nil, err
	}
	ws, v, err := session.LiveWorkspace(e.IO, cfg, dir)
	if err != nil {
		return nil, ws, nil, err
	}
	if v == nil {
		return nil, ws, nil, session.ExitError{Status: session.ExitFail, Err: fmt.Errorf("%s: no VM runs for workspace %s (start one with %s -d, or %s)", cmd, ws.Source, e.Prog, e.Prog)}
	}
	return cfg, ws, v, nil
}

// runExec is `loftd exec [-i] [-t] [-e K=V]… [--root] [-w DIR] [--workspace DIR] -- CMD…`.
func runExec(e *env, args []string) error {
	fs := e.newFlagSet("exec", e.Prog+" exec [-i] [-t] [-e NAME=VALUE]… [--root] [-w DIR] [--workspace DIR] -- CMD [ARGS…]")
	fs.SetInterspersed(false)
	stdin := fs.BoolP("interactive", "i", false, "pass stdin to the command (else it reads EOF)")
	tty := fs.BoolP("tty", "t", false, "run the command on a pty, the terminal in raw mode (stdin must be a terminal)")
	envs := fs.StringArrayP("env", "e", nil, "set NAME=VALUE, or NAME (the host's value), in the command's environment")
	root := fs.Bool("root", false, "run as root instead of the guest user")
	workdir := fs.StringP("workdir", "w", "", "working directory in the guest (default: /workspace)")
	workspace := fs.String("workspace", "", "the workspace whose VM runs the command (default: the current directory's)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return session.Usagef("exec: want a command (%s exec -- CMD)", e.Prog)
	}
	var wsArgs []string
	if *workspace != "" {
		wsArgs = []string{*workspace}
	}
	_, ws, v, err := e.liveVM("exec", wsArgs)
	if err != nil {
		return err
	}
	keys, err := session.WorkspaceKeys(ws)
	if err != nil {
		return err
	}
	user := contract.DefaultUser
	if *root {
		user = "root"
	}
	term := liveclient.StdinTerminal()
	if *tty && term == nil {
		return session.Usagef("exec: -t needs a terminal on stdin and stdout")
	}
	if !*tty {
		term = nil
	}
	o := liveclient.ExecOptions{
		Command: fs.Args(), Env: session.GuestEnv(*envs, os.Environ()), User: user, Workdir: *workdir,
		TTY: *tty, Stdin: *stdin || *tty, Term: e.Getenv("TERM"),
	}
	status, err := liveclient.Exec(v.Task, keys, o, liveclient.Streams{Stdin: e.Stdin, Stdout: e.Stdout, Stderr: e.Stderr, Terminal: term})
	if err != nil {
		return session.ExitError{Status: session.ExitSetup, Err: err}
	}
	return session.ExitError{Status: status}
}

// runAttach is `loftd attach [--detach-keys KEYS] [WORKSPACE]`.
func runAttach(e *env, args []string) error {
	fs := e.newFlagSet("attach", e.Prog+" attach [--detach-keys KEYS] [--root] [WORKSPACE]")
	keysFlag := fs.String("detach-keys", "", "the keys that detach, leaving the VM running (default [live] detach_keys, else ctrl-p,ctrl-q)")
	root := fs.Bool("root", false, "attach as root (the held session is the same)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	cfg, ws, v, err := e.liveVM("attach", fs.Args())
	if err != nil {
		return err
	}
	keys, err := session.WorkspaceKeys(ws)
	if err != nil {
		return err
	}
	user := contract.DefaultUser
	if *root {
		user = "root"
	}
	status, err := session.Attach(e.IO, ws, v, keys, user, cfg.Live.DetachKeys, *keysFlag)
	if err != nil {
		return err
	}
	return session.ExitError{Status: status}
}

// runStop is `loftd stop [--time N] [WORKSPACE]`; runKill is `loftd kill`.
func runStop(e *env, args []string) error {
	fs := e.newFlagSet("stop", e.Prog+" stop [--time SECONDS] [WORKSPACE]")
	grace := fs.UintP("time", "t", 10, "seconds the guest's processes get after SIGTERM before SIGKILL")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	return e.endVM("stop", fs.Args(), live.Request{Op: live.OpStop, Grace: uint32(*grace)})
}

func runKill(e *env, args []string) error {
	fs := e.newFlagSet("kill", e.Prog+" kill [WORKSPACE]")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	return e.endVM("kill", fs.Args(), live.Request{Op: live.OpKill})
}

// endVM sends req and waits until the VM's owner is gone (its record and
// task removed), so nothing is left when the command returns.
func (e *env) endVM(cmd string, args []string, req live.Request) error {
	_, ws, v, err := e.liveVM(cmd, args)
	if err != nil {
		return err
	}
	if _, err := live.Ask(v.Task, req); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	for processAlive(v.PID) {
		time.Sleep(50 * time.Millisecond)
	}
	e.Log.Debug("workspace VM ended", "workspace", ws.Source, "task", v.Task)
	return nil
}

// processAlive: pid exists and is not a zombie of ours.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	return unix.Kill(pid, 0) == nil
}

package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/disks"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/rootfs/inroot"
	"golang.org/x/term"
)

// Start runs one session with opts, merged over cfg: it adds the
// tool-state shares and resolves the volumes, enters the keep-id namespace
// when not root, and runs. The status is the workload's; an error is a
// usage error (ErrUsage) or an ExitError.
func Start(e IO, opts *Options, cfg *Config) (int, error) {
	tools, err := toolMounts(opts.Profile, cfg, e.Getenv("HOME"), opts.LiveMounts)
	if err != nil {
		return 0, Usagef("%v", err)
	}
	tools = capToolShares(e, dropShadowedTools(e, tools, opts.Volumes))
	opts.Volumes = append(tools, opts.Volumes...)
	if err := resolveSessionVolumes(opts); err != nil {
		return 0, Usagef("%v", err)
	}
	e.Log = NewLogger(e.Stderr, opts.Debug)
	if err := EnterUserNamespace(e, cfg); err != nil {
		return 0, ExitError{Status: ExitSetup, Err: err}
	}
	return runSession(context.Background(), e, opts, cfg)
}

// ReadConfig reads the config file the environment names (or the default
// one; none is no error).
func ReadConfig(e IO) (*Config, error) {
	path, err := ConfigPath(e.Getenv)
	if err != nil {
		return nil, err
	}
	return LoadConfig(path)
}

// OpenState makes the state directory cfg and the environment name, and
// opens it.
func OpenState(e IO, cfg *Config) (state.State, error) {
	dir, err := StateDir(cfg, e.Getenv)
	if err != nil {
		return state.State{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return state.State{}, fmt.Errorf("create state directory: %w", err)
	}
	return state.State{Dir: dir}, nil
}

// session is one run's resources, released in reverse order by close.
type session struct {
	io      IO
	ctx     context.Context // cancelled by a stop signal during setup
	sigs    *signalWatch
	opts    *Options
	cfg     *Config
	state   state.State
	ws      state.Workspace
	taskDir string
	task    *state.Task
	failure error // the session's error, for the clean-up to see
	root    string
	id      identity // the guest user's, in the guest and on the host
	kc      contract.KrunConfig
	prof    *profiler
	undo    []func() error
}

// runSession runs one session. Stop signals are caught from its first
// instant: during setup one cancels the context, the phase in progress
// returns, every phase's undo runs and loftd exits 128+n; from boot on they
// are forwarded to the helper (boot).
func runSession(ctx context.Context, e IO, opts *Options, cfg *Config) (status int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := watchSignals(cancel)
	// Deferred first, so it runs last: a second ^C during the cleanup
	// must not kill loftd halfway through it.
	defer sigs.stop()
	s := &session{io: e, ctx: ctx, sigs: sigs, opts: opts, cfg: cfg, prof: newProfiler(opts.ProfileOut)}
	defer func() {
		s.failure = err
		if cerr := s.prof.time("cleanup", s.close); cerr != nil {
			e.Log.Warn("clean up task", "err", cerr)
		}
		s.prof.print(e.Stderr)
	}()
	steps := []struct {
		name string
		fn   func() error
	}{
		{"state", s.prepareState},
		{"disks", s.prepareDisks},
		{"task", s.prepareTask},
		{"rootfs", s.prepareRoot},
		{"guest-config", s.writeGuestConfig},
	}
	for _, st := range steps {
		err := s.prof.time(st.name, st.fn)
		if sig := sigs.caught(); sig != nil {
			e.Log.Debug("stopped during setup", "phase", st.name, "signal", sig, "err", err)
			return signalStatus(sig), nil
		}
		if err != nil {
			if errors.Is(err, ErrUsage) {
				return 0, err
			}
			return 0, ExitError{Status: ExitSetup, Err: err}
		}
	}
	plan, err := s.plan()
	if err != nil {
		return 0, ExitError{Status: ExitSetup, Err: err}
	}
	status, err = s.boot(ctx, plan)
	if err == nil && !s.opts.DryRun {
		if derr := s.diskWriteError(status); derr != nil {
			return 0, derr
		}
	}
	return status, err
}

func (s *session) close() error {
	var errs []error
	for i := len(s.undo) - 1; i >= 0; i-- {
		if err := s.undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	s.undo = nil
	return errors.Join(errs...)
}

func (s *session) prepareState() error {
	st, err := OpenState(s.io, s.cfg)
	if err != nil {
		return err
	}
	s.state = st
	dir := s.opts.Workspace
	if dir == "" {
		dir = "."
	}
	src, err := state.FindWorkspace(dir)
	if err != nil {
		return err
	}
	s.ws = st.Workspace(src)
	if s.id, err = guestIdentity(s.opts.UID, s.opts.GID, src); err != nil {
		return err
	}
	if err := s.checkWorkspaceEntry(); err != nil {
		return err
	}
	// A crashed run (killed parent) left its task behind: collect it now.
	// Safe before the workspace lock: tasks belong to no workspace, and a
	// task is removed only once its own lock proves its loftd gone.
	if removed, err := st.CollectStale(); err != nil || len(removed) > 0 {
		s.io.Log.Debug("collected stale tasks", "tasks", removed, "err", err)
	}
	s.io.Log.Debug("workspace", "source", src, "state", s.ws.Dir)
	if err := os.MkdirAll(s.ws.Dir, 0o700); err != nil {
		return fmt.Errorf("workspace state: %w", err)
	}
	return ownByUser(s.ws.Dir)
}

// prepareDisks ensures both persistent disks and holds the workspace lock
// for the whole session. Exclusively: two VMs must never write one disk,
// and resize and reset-nix must wait for the VM to end; the refusal names
// the session that holds it.
func (s *session) prepareDisks() error {
	lock, err := disks.Lock(s.ws.Lock(), true)
	if err != nil {
		return fmt.Errorf("workspace %s is in use: %w", s.ws.Source, err)
	}
	s.undo = append(s.undo, lock.Close)
	if err := ownByUser(s.ws.Lock()); err != nil {
		return err
	}
	for _, d := range s.diskSpecs() {
		created, err := disks.Ensure(d.path, d.label, d.size)
		if err != nil {
			return fmt.Errorf("prepare %s disk: %w", d.name, err)
		}
		if created {
			s.io.Log.Debug("created disk", "path", d.path, "size", disks.FormatSize(d.size))
			if err := ownByUser(d.path); err != nil {
				return err
			}
		}
	}
	return nil
}

type diskSpec struct {
	name, id, label, path string
	size                  int64
}

func (s *session) diskSpecs() []diskSpec {
	return []diskSpec{
		{"nix", contract.NixDiskID, contract.NixLabel, s.ws.NixDisk(), SizeOr(s.cfg.Disks.NixSize)},
		{"containers", contract.ContainersDiskID, contract.ContainersLabel, s.ws.ContainersDisk(), SizeOr(s.cfg.Disks.ContainersSize)},
	}
}

// SizeOr is the disk size s names, or the default size.
func SizeOr(s string) int64 {
	if n, err := disks.ParseSize(s); err == nil {
		return n
	}
	return disks.DefaultSize
}

// prepareTask claims the task directory for the session's whole life. A
// --preserve-debug task is marked kept at once, so a killed run keeps it
// too.
func (s *session) prepareTask() error {
	task, err := s.state.NewTask()
	if err != nil {
		return err
	}
	s.task, s.taskDir = task, task.Dir
	s.undo = append(s.undo, s.releaseTask)
	if s.opts.Preserve {
		return task.Keep()
	}
	return nil
}

// releaseTask removes the task directory, or keeps it when asked to or
// when the session's error sends the user into it ("logs in TASKDIR"),
// and then gives up the claim.
func (s *session) releaseTask() error {
	defer s.task.Release()
	why := ""
	switch {
	case s.opts.Preserve:
		why = "--preserve-debug"
	case s.failure != nil && strings.Contains(s.failure.Error(), s.task.Dir):
		why = "the error names it"
		if err := s.task.Keep(); err != nil {
			return errors.Join(err, s.task.Remove())
		}
	default:
		return s.task.Remove()
	}
	fmt.Fprintf(s.io.Stderr, "%s: kept task directory %s (%s); remove it with: %s gc\n", s.io.Prog, s.task.Dir, why, s.io.Prog)
	return nil
}

// writeGuestConfig injects the guest init and writes /.krun_config.json.
func (s *session) writeGuestConfig() error {
	if err := injectGuestInit(s.root, s.opts.GuestInit); err != nil {
		return err
	}
	if err := prepareKrunRoot(s.root, s.opts.KrunInit); err != nil {
		return err
	}
	s.kc = contract.KrunConfig{
		Cmd: append([]string{contract.GuestInitPath, "enter", "--"}, s.command()...),
		Env: append(s.guest().Env(), GuestEnv(s.opts.Env, os.Environ())...),
		// "/": libkrun's init chdirs here before /workspace is mounted;
		// the guest init applies LOFTD_WORKDIR after its mounts.
		WorkingDir: "/",
	}
	if err := s.writeVolumes(); err != nil {
		return err
	}
	if interactive() {
		if term := os.Getenv("TERM"); term != "" {
			s.kc.Env = append(s.kc.Env, "TERM="+term)
		}
	}
	// No HTML escaping: libkrun's init reads the file with a small C
	// decoder (jsmn + init.c unescape_string); <, > and & as plain bytes
	// leave it less to decode than \u003c and friends.
	var data bytes.Buffer
	enc := json.NewEncoder(&data)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.kc); err != nil {
		return fmt.Errorf("write guest config: %w", err)
	}
	// The root is the task's private copy of a tree the image or the
	// --rootfs directory controls: never follow a symlink planted there.
	if err := inroot.WriteFile(s.root, contract.KrunConfigPath, &data, 0o644); err != nil {
		return fmt.Errorf("write guest config: %w", err)
	}
	return nil
}

// command is the workload; none means the guest user's login shell,
// which only the guest knows (from its /etc/passwd).
func (s *session) command() []string {
	return s.opts.Command
}

func (s *session) guest() contract.Guest {
	uid, gid := s.id.guestUID, s.id.guestGID
	return contract.Guest{
		Mode: contract.ModeEnter, UID: uid, GID: gid, User: contract.DefaultUser,
		Root: s.opts.Root, WorkspaceTag: contract.WorkspaceTag,
		NixDisk: contract.NixDiskID, ContainersDisk: contract.ContainersDiskID,
		Network: s.opts.Network.String(), Profile: s.opts.ProfileOut,
		TTY: interactive(), Workdir: contract.WorkspaceMount,
		Hostname: guestHostname(s.ws.Source),
	}
}

// guestHostname is the workspace's name without its hash: readable in a
// prompt, and a valid hostname (WorkspaceName keeps [a-z0-9-]).
func guestHostname(src string) string {
	name := state.WorkspaceName(src)
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		return name[:i]
	}
	return name
}

func (s *session) plan() (*launch.Plan, error) {
	choice := s.opts.VMM
	if s.opts.KrunInit != "" {
		choice = launch.VMMQEMU // libkrun's init, booted as libkrun would, under QEMU
	}
	shareIDs, err := shareIDs(s.id)
	if err != nil {
		return nil, err
	}
	vmm, why, err := pickVMMFor(choice, shareIDs != nil)
	if err != nil {
		return nil, err
	}
	s.io.Log.Debug("vmm", "backend", vmm.name, "why", why)
	network, err := s.network(vmm.name)
	if err != nil {
		return nil, err
	}
	memBytes, cpus := HostResources()
	p := &launch.Plan{
		Version: launch.Version, VMM: vmm.name, Library: vmm.library, KrunfwLibrary: vmm.krunfw,
		QEMU: vmm.qemu, Virtiofsd: vmm.virtiofsd,
		VCPUs: s.opts.CPUs, RAMMiB: s.opts.Mem, Root: s.root,
		Shares:   []launch.Share{{Tag: contract.WorkspaceTag, Path: s.ws.Source}},
		ShareIDs: shareIDs,
		Network:  network,
		Console:  launch.Console{Interactive: interactive()},
		ExecPath: contract.GuestInitPath, Workdir: "/",
		CacheDir: s.state.Kernels(), KrunInit: s.opts.KrunInit,
	}
	if p.VCPUs == 0 {
		p.VCPUs = DefaultCPUs(cpus)
	}
	if p.RAMMiB == 0 {
		p.RAMMiB = DefaultMem(memBytes)
	}
	for _, d := range s.diskSpecs() {
		p.Disks = append(p.Disks, launch.Disk{ID: d.id, Path: d.path})
	}
	shares, _ := volumeShares(s.opts.Volumes)
	p.Shares = append(p.Shares, shares...)
	p.Argv, p.Env = s.kc.Cmd[1:], s.kc.Env
	if err := launch.Write(s.taskDir, p); err != nil {
		return nil, err
	}
	return p, nil
}

// interactive: the session gets a terminal in the guest (a pty, the host
// terminal raw) only when both stdin and stdout are terminals. With stdout
// redirected (loftd -- cmd > file) the streams stay separate and exact: a
// pty would put \r\n and echo into the file.
func interactive() bool { return isTerminal(os.Stdin) && isTerminal(os.Stdout) }

func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd()))
}

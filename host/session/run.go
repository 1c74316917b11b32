package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/disks"
	"github.com/loftd/loftd/host/liveclient"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/rootfs"
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
	opts.profileReview(cfg)
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
	share   string   // the workspace as the guest gets it: the source, or a review overlay
	id      identity // the guest user's, in the guest and on the host
	kc      contract.KrunConfig
	keys    *liveclient.Keys // the workspace's ssh keys (live.go)
	ready   *readyNotifier   // a background owner's report to its parent
	// bootstrap is the script put on the task root this boot (nil: none).
	bootstrap []byte
	// trust: the task root has contract.TrustPath; secretEnv are the
	// secrets' NAME=placeholder; intercept is the netstack's part.
	trust     bool
	secretEnv []string
	intercept *launch.Intercept
	prof      *profiler
	undo      []func() error
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
	if opts.Background {
		s.ready = newReadyNotifier(opts.ReadyFD)
		defer func() { s.ready.ended(status, err) }()
	}
	defer func() {
		s.failure = err
		if cerr := s.prof.time("cleanup", s.close); cerr != nil {
			e.Log.Warn("clean up task", "err", cerr)
		}
		s.prof.print(e.Stderr)
	}()
	if err := s.prof.time("state", s.prepareState); err != nil {
		if errors.Is(err, ErrUsage) {
			return 0, err
		}
		return 0, ExitError{Status: ExitSetup, Err: err}
	}
	if !opts.DryRun {
		v, err := FindLive(s.ws)
		if err != nil {
			return 0, ExitError{Status: ExitSetup, Err: err}
		}
		if v != nil {
			e.Log.Debug("joining the workspace's running VM", "task", v.Task, "owner", v.PID, "detached", v.Detached)
			return s.join(v)
		}
		e.Log.Debug("no VM runs for this workspace: booting a fresh one")
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"disks", s.prepareDisks},
		{"task", s.prepareTask},
		{"review", s.prepareReview},
		{"rootfs", s.prepareRoot},
		{"trust", s.prepareTrust},
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
	v := &supervisor{io: s.io, sigs: s.sigs, debug: s.opts.Debug, dryRun: s.opts.DryRun, taskDir: s.taskDir, root: s.root, prof: s.prof}
	if !s.opts.DryRun {
		v.started = s.started
	}
	status, err = v.boot(ctx, plan)
	if !s.opts.DryRun {
		s.finishBootstrap()
		s.reportDenials()
	}
	if err == nil && !s.opts.DryRun {
		if derr := diskWriteError(s.taskDir, s.ws.NixDisk(), status); derr != nil {
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
	if err := s.opts.addWorkspaceEgress(s.cfg, src); err != nil {
		return err
	}
	if s.id, err = guestIdentity(s.opts.UID, s.opts.GID, src); err != nil {
		return err
	}
	if err := checkWorkspaceEntry(src, s.id); err != nil {
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
	if s.opts.Background {
		if err := logToTask(task.Dir); err != nil {
			return err
		}
	}
	if err := s.prepareLive(); err != nil {
		return err
	}
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

// prepareRoot decides the task's root filesystem: a private overlay over
// the directory the user named with --rootfs (the directory itself is
// never written, so it may be read-only or shared by concurrent runs), or
// a private snapshot of an image.
func (s *session) prepareRoot() error {
	if s.opts.RootfsDir == "" {
		return s.prepareImageRoot()
	}
	dir, err := checkRootfsDir(s.opts.RootfsDir, s.state.Dir, s.ws.Source)
	if err != nil {
		return err
	}
	if rootfs.InKeepID() {
		if err := checkRootlessRootfs(dir); err != nil {
			return err
		}
	}
	task, err := rootfs.NewDirTask(dir, s.taskDir, s.opts.Backend, s.io.Log)
	if err != nil {
		return err
	}
	s.io.Log.Debug("task root", "path", task.Root, "backend", task.Backend, "why", task.Reason, "rootfs", dir)
	s.keepTaskRoot(task)
	return nil
}

// keepTaskRoot makes task the session's root and removes it at the end,
// unless --preserve-debug keeps it.
func (s *session) keepTaskRoot(task *rootfs.Task) {
	s.undo = append(s.undo, func() error {
		if s.opts.Preserve {
			fmt.Fprintf(s.io.Stderr, "%s: kept task root %s (%s); remove it and its task with: %s gc\n", s.io.Prog, task.Root, task.Backend, s.io.Prog)
			return nil
		}
		return task.Remove()
	})
	s.root = task.Root
}

// prepareImageRoot resolves the image (a cache hit does no network and no
// copy) and materializes the task's private root from it.
func (s *session) prepareImageRoot() error {
	ctx := s.ctx // a stop signal cancels the pull and the ingestion
	store, err := OpenStore(s.io, s.cfg, s.state, s.opts.AuthFile)
	if err != nil {
		return err
	}
	s.undo = append(s.undo, store.Close)
	img, err := resolveImage(ctx, s.io, store, s.cfg, s.opts)
	if err != nil {
		return err
	}
	task, err := store.NewTask(ctx, img, s.taskDir, s.opts.Backend)
	if err != nil {
		return err
	}
	s.io.Log.Debug("task root", "path", task.Root, "backend", task.Backend, "why", task.Reason, "image", img.Ref, "digest", img.Digest, "cache_hit", img.CacheHit)
	s.keepTaskRoot(task)
	return nil
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
	network, err := planNetwork(s.opts, vmm.name, s.state.Kernels())
	if err != nil {
		return nil, err
	}
	if network.Egress != nil {
		network.Egress.Intercept = s.intercept
	}
	memBytes, cpus := HostResources()
	p := &launch.Plan{
		Version: launch.Version, VMM: vmm.name, Library: vmm.library, KrunfwLibrary: vmm.krunfw,
		QEMU: vmm.qemu, Virtiofsd: vmm.virtiofsd, VirtiofsdFlavor: vmm.virtiofsdFlavor,
		VCPUs: s.opts.CPUs, RAMMiB: s.opts.Mem, Root: s.root,
		Shares:   []launch.Share{{Tag: contract.WorkspaceTag, Path: s.share}},
		ShareIDs: shareIDs,
		Network:  network,
		Console:  launch.Console{Interactive: interactive()},
		ExecPath: contract.GuestInitPath, Workdir: "/",
		CacheDir: s.state.Kernels(), KrunInit: s.opts.KrunInit,
		Sandbox: s.opts.Sandbox,
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

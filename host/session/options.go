package session

import (
	"fmt"
	"os"
	"strings"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/internal/confine"
	"github.com/loftd/loftd/launch"
	"github.com/spf13/pflag"
)

// Options is one session's settings after flags and the config file merged.
type Options struct {
	Profile    string // "loftd" or "agentbox"
	Image      string
	PullLatest bool
	AuthFile   string     // registry credentials file ("": containers' defaults)
	Bootstrap  string     // the workspace's bootstrap script ("": none); relative to the workspace
	Hostname   string     // the guest's hostname ("": the workspace's name)
	Mem        launch.MiB // 0: the default (DefaultMem)
	CPUs       int
	Root       bool
	Network    launch.NetworkMode
	Publish    []PortMap
	// Allow and AllowHost are the egress policy's opt-ins (network
	// egress): --allow CIDR|NAME|*.NAME and --allow-host, the config's
	// [network] allow and allow_host first.
	Allow     []string
	AllowHost bool
	// Secrets (--secret, [secrets]) reach the guest as placeholders that
	// the egress network replaces on TLS to their hosts; ExtraCA
	// (--extra-ca, [tls] extra_ca) are absolute paths of PEM files.
	Secrets    []SecretSpec
	ExtraCA    []string
	Volumes    []Volume
	Env        []string // NAME, NAME=VALUE or PREFIX*
	Workspace  string
	VMM        launch.VMM
	Sandbox    confine.Mode // how the helper, QEMU and virtiofsd are confined
	RootfsDir  string
	Backend    string
	GuestInit  string
	KrunInit   string // testing only: libkrun's init, booted under QEMU as libkrun would
	Preserve   bool
	DryRun     bool
	Debug      bool
	ProfileOut bool
	UID, GID   int // -1: derive (SUDO_UID/GID, else 1000) when root
	// LiveMounts: agentbox's tool-state directories are shared read-write
	// (--live-mounts, [agentbox] live_mounts) instead of overlaid.
	LiveMounts bool
	// Detach (-d): the VM runs in the background, outliving its
	// sessions, until stop or its idle timeout (IdleTimeout seconds).
	Detach      bool
	IdleTimeout int
	// Hold: the main command runs on a pty the guest holds for attach
	// (contract.EnvHold); set for -d and for an interactive start.
	Hold bool
	// Background: this loftd is the VM owner a -d (or an interactive
	// start) spawned; it reports ready on ReadyFD and logs to the task.
	Background bool
	ReadyFD    int
	// Review: the guest writes the workspace through an overlay kept in
	// the state directory, applied or discarded after the run (--review,
	// [workspace] review, agentbox's [agentbox] review).
	Review    bool
	reviewSet bool // --review given: it beats [agentbox] review
	Command   []string
}

// Flags holds the raw flags of a session (loftd / agentbox without a
// subcommand): Register declares them, Options validates them and merges
// them over the config file.
type Flags struct {
	image, workspace, vmm, rootfs, backend, guestInit string
	krunInit, network, authFile, bootstrap, hostname  string
	sandbox                                           string
	pullLatest, root, tsi, preserve, debug, profile   bool
	dryRun, liveMounts, review, allowHost, detach     bool
	idleTimeout                                       string
	mem, cpus, uid, gid                               int
	publish, volumes, env, allow                      []string
	secrets, extraCA                                  []string
	host                                              func() (memBytes uint64, cpus int)
}

// Register declares the session's flags on fs.
func (r *Flags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&r.image, "image", "", "OCI image to boot (any containers/image transport: docker://, oci:DIR:TAG, …)")
	fs.BoolVar(&r.pullLatest, "pull-latest", false, "pull the image even when it is cached")
	fs.StringVar(&r.bootstrap, "bootstrap", "", "a script run once per new workspace, as the guest user, before its first workload;\na relative path is relative to the workspace (default: [workspace] bootstrap)")
	fs.StringVar(&r.hostname, "hostname", "", "the guest's hostname (default: [workspace] hostname, else the workspace's name)")
	fs.StringVar(&r.authFile, "authfile", "", "registry credentials for --image (containers-auth.json; a pull secret's .dockerconfigjson works)\n(default: $REGISTRY_AUTH_FILE, else [image] authfile, else containers' default places)")
	fs.IntVar(&r.mem, "mem", 0, "guest memory in GiB, at most the RAM this host or its cgroup allows (omit for 80% of it)")
	fs.IntVar(&r.cpus, "cpus", 0, "guest vCPUs, at most the CPUs this host or its cgroup allows, and 255 (omit for all when that is ≤ 6, else all but 2)")
	fs.BoolVar(&r.root, "root", false, "run the command as root in the guest instead of the dev user")
	fs.BoolVar(&r.tsi, "tsi", false, "use libkrun's transparent socket impersonation instead of passt (krun backend only; TCP publishes without ranges or addresses)")
	fs.StringVar(&r.network, "network", "", "guest network: egress (default: loftd's policy network: public addresses only, DNS through loftd,\nno UDP but DNS; see --allow), passt (unfiltered: the host's loopback, the LAN, link-local) or none (lo only)")
	fs.StringArrayVar(&r.allow, "allow", nil, "egress: also allow a CIDR (10.1.0.0/16, link-local included), or switch to allow-list mode with a\nNAME or *.NAME: only allowed names resolve, and connections go only to their addresses")
	fs.StringArrayVar(&r.secrets, "secret", nil, "egress: give the guest variable NAME a placeholder that the host replaces with FILE's content in HTTP\nrequest headers on TLS to HOST (or *.DOMAIN) only: NAME=@FILE[:HOST,...] (hosts may come from [secrets.NAME])")
	fs.StringArrayVar(&r.extraCA, "extra-ca", nil, "add the CA certificates of this PEM file to the guest's trust store (and trust them for --secret's hosts)")
	fs.BoolVar(&r.allowHost, "allow-host", false, "egress: let the guest reach the host's loopback at its gateway address, 10.0.2.2 (the host's names in /etc/hosts)")
	fs.StringArrayVarP(&r.publish, "publish", "p", nil, "publish a guest port: [IP:]HOST:GUEST[/tcp|udp], ranges as 8000-8010:80-90")
	fs.StringArrayVarP(&r.volumes, "volume", "v", nil, "share a host directory: SRC:DST[:ro]")
	fs.StringArrayVarP(&r.env, "env", "e", nil, "pass NAME=VALUE, NAME (host value) or PREFIX* (all host vars with that prefix); LOFTD_* names are reserved")
	fs.StringVar(&r.workspace, "workspace", "", "project directory mounted at /workspace (default: git top level, else the current directory)")
	fs.StringVar(&r.vmm, "vmm", "", "VM backend: krun, qemu or auto (krun when libkrun loads, else qemu)")
	fs.StringVar(&r.sandbox, "vmm-sandbox", "", "confine the VMM processes: enforce (default: Landlock, seccomp, no root for QEMU; refuse to boot without them),\naudit (log what would be denied) or off")
	fs.StringVar(&r.rootfs, "rootfs", "", "boot a private overlay of this directory as the root instead of an image\n(the directory itself is never written; the guest's changes end with the run)")
	fs.StringVar(&r.backend, "rootfs-backend", "", "task root backend: auto, btrfs-snapshot, overlay or fuse-overlay")
	fs.StringVar(&r.guestInit, "guest-init", "", "guest init binary to inject (default: loftd-guest-init next to loftd; \"image\" keeps the image's own)")
	// Hidden, for the conformance tests: the guest contract through
	// libkrun's real init on machines that cannot run libkrun.
	fs.StringVar(&r.krunInit, "krun-init", "", "testing: boot under QEMU as libkrun would, with this libkrun init binary (init.krun) as /init.krun")
	_ = fs.MarkHidden("krun-init")
	fs.BoolVar(&r.preserve, "preserve-debug", false, "keep the task directory after the run and print how to remove it")
	fs.BoolVar(&r.dryRun, "dry-run", false, "prepare everything and start the helper, which stops just before booting the VM")
	fs.BoolVar(&r.debug, "debug", false, "debug logs on stderr")
	fs.BoolVarP(&r.detach, "detach", "d", false, "start the workspace VM in the background and return once it is ready;\nit runs until `loftd stop` (or --idle-timeout); reach it with exec, attach or ssh")
	fs.StringVar(&r.idleTimeout, "idle-timeout", "", "a detached VM with no session left powers off after this long (90s, 30m; default [live] idle_timeout, 0: never)")
	fs.BoolVar(&r.profile, "profile", false, "print a timing table of host phases and guest steps on stderr")
	fs.BoolVar(&r.liveMounts, "live-mounts", false, "agentbox: share the tool-state directories (~/.claude, …) read-write, so the guest's changes reach\nthe host's files; a guest can then plant hooks the host's tools run (default: the guest writes an overlay kept with the workspace)")
	fs.BoolVar(&r.review, "review", false, "review run: the guest's writes to the workspace go to a layer kept after the run, and reach\nthe workspace only with 'apply' (see 'diff', 'apply', 'discard', 'reviews')")
	fs.IntVar(&r.uid, "uid", -1, "as root, the host user the guest user works as: its files in the shares are this uid's\n(default: SUDO_UID, else the workspace's owner; the guest user's uid is the same, or 1000 for root)")
	fs.IntVar(&r.gid, "gid", -1, "as root, the host group of the guest user's files (default: SUDO_GID, else the workspace's group)")
}

// Options validates r and merges it over cfg: a flag that was set wins.
func (r *Flags) Options(fs *pflag.FlagSet, cfg *Config, args []string) (*Options, error) {
	set := func(name string) bool { return fs.Changed(name) }
	o := &Options{
		Image: cfg.Image.Default, CPUs: cfg.VM.CPUs,
		Backend: cfg.Rootfs.Backend, GuestInit: cfg.Guest.Init,
		PullLatest: cfg.Image.Pull == "always", UID: -1, GID: -1, Command: args,
	}
	o.Env = append(o.Env, cfg.Env.Pass...)
	pick := func(name string, dst *string, v string) {
		if set(name) {
			*dst = v
		}
	}
	pick("image", &o.Image, r.image)
	var err error
	if o.AuthFile, err = AuthFile(r.authFile, os.Getenv, cfg); err != nil {
		return nil, err
	}
	o.Bootstrap, o.Hostname = cfg.Workspace.Bootstrap, cfg.Workspace.Hostname
	pick("bootstrap", &o.Bootstrap, r.bootstrap)
	pick("hostname", &o.Hostname, r.hostname)
	if o.Hostname != "" && !contract.ValidHostname(o.Hostname) {
		herr := fmt.Errorf("%q is not a hostname: want up to 64 letters, digits, '-' and '.', not starting with '-' or '.'", o.Hostname)
		if set("hostname") {
			return nil, fmt.Errorf("--hostname %w", herr)
		}
		return nil, cfg.keyError(true, "[workspace] hostname", "--hostname", herr)
	}
	pick("rootfs-backend", &o.Backend, r.backend)
	pick("guest-init", &o.GuestInit, r.guestInit)
	pick("workspace", &o.Workspace, r.workspace)
	pick("rootfs", &o.RootfsDir, r.rootfs)
	pick("krun-init", &o.KrunInit, r.krunInit)
	memGiB := cfg.VM.Mem
	if set("mem") {
		memGiB = r.mem
	}
	if set("cpus") {
		o.CPUs = r.cpus
	}
	o.PullLatest = o.PullLatest || r.pullLatest
	o.LiveMounts = cfg.Agentbox.LiveMounts || r.liveMounts
	o.Review, o.reviewSet = cfg.Workspace.Review, set("review")
	if o.reviewSet {
		o.Review = r.review
	}
	o.Root, o.Preserve, o.Debug, o.ProfileOut, o.DryRun = r.root, r.preserve, r.debug, r.profile, r.dryRun
	if err := o.parseModes(fs, cfg, r); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		id   int
	}{{"uid", r.uid}, {"gid", r.gid}} {
		if set(f.name) && (f.id < 0 || f.id > maxID) {
			return nil, fmt.Errorf("--%s %d: want an id from 0 to %d", f.name, f.id, maxID)
		}
	}
	o.UID, o.GID = r.uid, r.gid
	o.Detach = r.detach
	idle := cfg.Live.IdleTimeout
	if set("idle-timeout") {
		idle = r.idleTimeout
	}
	if o.IdleTimeout, err = ParseIdleTimeout(idle); err != nil {
		return nil, fmt.Errorf("--idle-timeout: %w", err)
	}
	o.Env = append(o.Env, r.env...)
	if err := o.validate(fs, cfg, r, memGiB); err != nil {
		return nil, err
	}
	o.Mem = launch.GiB(uint64(memGiB)) // checkResources refused a negative one
	return o, nil
}

// parseModes reads --vmm and --network (or --tsi) over the config's: the
// one place their names are read.
func (o *Options) parseModes(fs *pflag.FlagSet, cfg *Config, r *Flags) error {
	vmm, network := cfg.VM.VMM, cfg.Network.Mode
	if fs.Changed("vmm") {
		vmm = r.vmm
	}
	if fs.Changed("network") {
		network = r.network
	}
	var err error
	if o.VMM, err = launch.ParseVMM(vmm); err != nil {
		return fmt.Errorf("--vmm %w", err)
	}
	sandbox := cfg.VM.Sandbox
	if fs.Changed("vmm-sandbox") {
		sandbox = r.sandbox
	}
	if o.Sandbox, err = confine.ParseMode(sandbox); err != nil {
		return fmt.Errorf("--vmm-sandbox: %w", err)
	}
	if o.Network, err = launch.ParseNetworkMode(network); err != nil {
		return fmt.Errorf("--network %w", err)
	}
	if r.tsi {
		if fs.Changed("network") && o.Network != launch.NetworkTSI {
			return fmt.Errorf("--tsi and --network %s exclude each other: pick one", r.network)
		}
		o.Network = launch.NetworkTSI
	}
	return nil
}

func (o *Options) validate(fs *pflag.FlagSet, cfg *Config, r *Flags, memGiB int) error {
	if err := oneOf("--rootfs-backend", o.Backend, "auto", "btrfs-snapshot", "overlay", "fuse-overlay"); err != nil {
		return err
	}
	if err := r.checkResourceEnv(); err != nil {
		return err
	}
	if err := o.checkResources(fs, cfg.file(), memGiB, r.hostResources); err != nil {
		return err
	}
	for i, s := range append(append([]string{}, cfg.Network.Publish...), r.publish...) {
		pm, err := ParsePublish(s)
		if err != nil {
			return cfg.keyError(i < len(cfg.Network.Publish), "[network] publish", "--publish", err)
		}
		o.Publish = append(o.Publish, pm)
	}
	for i, s := range append(append([]string{}, cfg.Volumes...), r.volumes...) {
		v, err := ParseVolume(s)
		if err != nil {
			return cfg.keyError(i < len(cfg.Volumes), "volumes", "--volume", err)
		}
		o.Volumes = append(o.Volumes, v)
	}
	if err := checkVolumeTargets(o.Volumes); err != nil {
		return err
	}
	for i, e := range o.Env { // the config's [env] pass first, as options put them
		if err := checkEnvSpec(e); err != nil {
			return cfg.keyError(i < len(cfg.Env.Pass), "[env] pass", "--env", err)
		}
	}
	if o.KrunInit != "" && o.VMM == launch.VMMKrun {
		return fmt.Errorf("--krun-init boots libkrun's init under QEMU: drop --vmm krun")
	}
	if err := checkPublishes(o.Network, o.Publish); err != nil {
		return err
	}
	if err := o.parseEgress(cfg, r); err != nil {
		return err
	}
	if err := o.parseSecrets(cfg, r, os.Getenv); err != nil {
		return err
	}
	if o.RootfsDir != "" && o.Image != "" && o.Image != cfg.Image.Default {
		return fmt.Errorf("--rootfs and --image exclude each other: pick one")
	}
	return nil
}

func (r *Flags) hostResources() (memBytes uint64, cpus int) {
	if r.host != nil {
		return r.host()
	}
	return HostResources()
}

// checkResourceEnv reports a malformed EnvCPUs or EnvMemory (a pod's
// Downward API values), which HostResources would ignore.
func (r *Flags) checkResourceEnv() error {
	if r.host != nil {
		return nil
	}
	_, err := ReadResources(os.Getenv)
	return err
}

// checkResources refuses 0 (it used to mean "default" for the flags while
// -1 was refused; omitting the flag is the one way to ask for the default)
// and sizes the host cannot give, before a VMM fails on them with a less
// clear message. Memory is compared in GiB, so a huge value cannot
// overflow into a negative byte count.
func (o *Options) checkResources(fs *pflag.FlagSet, cfgFile string, memGiB int, host func() (uint64, int)) error {
	// A value no flag set came from the config file (a default is 0).
	memName, cpuName := "--mem", "--cpus"
	if !fs.Changed("mem") {
		memName = cfgFile + ": [vm] mem"
	}
	if !fs.Changed("cpus") {
		cpuName = cfgFile + ": [vm] cpus"
	}
	switch {
	case fs.Changed("mem") && memGiB == 0:
		return fmt.Errorf("--mem 0: omit the flag for the default (80%% of host RAM)")
	case fs.Changed("cpus") && o.CPUs == 0:
		return fmt.Errorf("--cpus 0: omit the flag for the default")
	case memGiB < 0:
		return fmt.Errorf("%s %d: want a whole number of GiB, at least 1", memName, memGiB)
	case o.CPUs < 0:
		return fmt.Errorf("%s %d: want a whole number of vCPUs, at least 1", cpuName, o.CPUs)
	case o.CPUs > launch.MaxVCPUs:
		return fmt.Errorf("%s %d: more than the %d vCPUs a VM can have", cpuName, o.CPUs, launch.MaxVCPUs)
	}
	if memGiB == 0 && o.CPUs == 0 {
		return nil
	}
	memBytes, cpus := host()
	if hostGiB := memBytes >> 30; memBytes > 0 && uint64(memGiB) > hostGiB {
		return fmt.Errorf("%s %d: more than the %d GiB of RAM this host (or its cgroup, or %s) allows; give at most %d", memName, memGiB, hostGiB, EnvMemory, hostGiB)
	}
	if cpus > 0 && o.CPUs > cpus {
		return fmt.Errorf("%s %d: more than the %d CPUs this host (or its cgroup, or %s) allows; give at most %d", cpuName, o.CPUs, cpus, EnvCPUs, cpus)
	}
	return nil
}

func oneOf(flag, v string, allowed ...string) error {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s %q: want one of %s", flag, v, strings.Join(allowed, ", "))
}

// reservedEnv is the prefix of the host↔guest contract
// (contract): a workload value would override LOFTD_MODE,
// LOFTD_HOST_UID and the rest.
const reservedEnv = "LOFTD_"

// checkEnvSpec validates one -e value: NAME, NAME=VALUE or PREFIX*.
func checkEnvSpec(s string) error {
	name, _, hasValue := strings.Cut(s, "=")
	prefix := false
	if !hasValue {
		name, prefix = strings.CutSuffix(name, "*")
	}
	if name == "" || strings.ContainsAny(name, " \t\n*") {
		return fmt.Errorf("--env %q: want NAME=VALUE, NAME (pass the host's value) or PREFIX* (pass every host variable with that prefix)", s)
	}
	// LOFTD* names every LOFTD_ variable too; L* does not (GuestEnv skips
	// them), so only a prefix that is itself inside LOFTD_ is refused.
	if strings.HasPrefix(name, reservedEnv) || (prefix && strings.HasPrefix(reservedEnv, name) && len(name) >= len("LOFTD")) {
		shown, _, _ := strings.Cut(s, "=")
		return fmt.Errorf("--env %s: LOFTD_* names are loftd's own (the guest init reads them); pick another name", shown)
	}
	return nil
}

// GuestEnv expands -e specs against the host environment, in order; a
// later NAME wins over an earlier one.
func GuestEnv(specs []string, hostEnv []string) []string {
	var out []string
	index := map[string]int{}
	put := func(name, value string) {
		if i, ok := index[name]; ok {
			out[i] = name + "=" + value
			return
		}
		index[name] = len(out)
		out = append(out, name+"="+value)
	}
	for _, spec := range specs {
		if name, value, ok := strings.Cut(spec, "="); ok {
			put(name, value)
			continue
		}
		prefix, isPrefix := strings.CutSuffix(spec, "*")
		for _, kv := range hostEnv {
			name, value, _ := strings.Cut(kv, "=")
			if isPrefix && strings.HasPrefix(name, reservedEnv) {
				continue // the host's own LOFTD_* (e.g. LOFTD_LIBKRUN_LIBRARY) stay out
			}
			if (isPrefix && strings.HasPrefix(name, prefix)) || (!isPrefix && name == spec) {
				put(name, value)
			}
		}
	}
	return out
}

// profileReview applies [agentbox] review to an agentbox session, unless
// --review was given either way.
func (o *Options) profileReview(cfg *Config) {
	if !o.reviewSet && o.Profile == "agentbox" && cfg.Agentbox.Review {
		o.Review = true
	}
}

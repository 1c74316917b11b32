package guestinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/loftd/loftd/contract"
	"golang.org/x/sys/unix"
)

// Guest paths of Podman's prep.
const (
	PodmanPrepStatus = "/run/loftd/podman-prep.status"
	PodmanPrepLog    = "/run/loftd/podman-prep.log"
	podmanServiceLog = "/run/loftd/podman-service.log"
	// subIDStart and subIDCount are the user's subordinate ids unless the
	// user's own uid falls in them.
	subIDStart = 100000
	subIDCount = 65536
)

func (d *diskPrep) containersDir() string { return d.home + "/.local/share/containers" }
func (d *diskPrep) runtimeDir() string    { return fmt.Sprintf("/run/user/%d", d.uid) }
func (d *diskPrep) podmanSocket() string  { return d.runtimeDir() + "/podman/podman.sock" }

func (d *diskPrep) containerSteps() []Step {
	steps := []Step{
		{Desc: d.containersDiskMount("LABEL=" + contract.ContainersLabel).String(), Do: d.mountContainersDisk},
		{Desc: fmt.Sprintf("write %s/.config/containers/{storage,containers,registries}.conf policy.json; /etc/subuid /etc/subgid; /dev/net/tun /dev/shm", d.home), Do: d.writePodmanConfig},
	}
	if d.lookBin("podman") == "" {
		return steps
	}
	if d.lookBin("docker") == "" {
		steps = append(steps, Step{Desc: "write /usr/local/bin/docker (exec podman)", Do: d.writeDockerShim})
	}
	if d.lookBin("sh") != "" {
		steps = append(steps,
			Step{Desc: "listen " + syslogSocket + " (to " + SyslogLog + "; podman --syslog needs it)", Do: d.listenSyslog},
			Step{Desc: "podman images & (as " + d.user + ", once the guest is idle; system migrate at once when another Podman used the store)", Do: d.startPodmanPrep},
			Step{Desc: "listen " + d.podmanSocket() + " (podman system service on first use); DOCKER_HOST", Do: d.listenPodman},
		)
	}
	return steps
}

// containersDiskMount mounts the containers disk dev (found by its label)
// as the user's container storage; user_subvol_rm_allowed lets rootless
// Podman's btrfs driver delete its subvolumes.
func (d *diskPrep) containersDiskMount(dev string) mountOp {
	return mountOp{FSType: "btrfs", Source: dev, Target: d.containersDir(),
		Flags: unix.MS_NOATIME | unix.MS_NODEV | unix.MS_NOSUID, Data: "user_subvol_rm_allowed"}
}

func (d *diskPrep) mountContainersDisk() error {
	dir := d.containersDir()
	if err := d.mkdirOwned(dir, 0o755, d.uid, d.gid); err != nil {
		return fmt.Errorf("prepare %s: %w", dir, err)
	}
	if err := d.containersDiskMount(d.disks[contract.ContainersLabel]).under(d.e.sys.SysRoot).do(d.e.sys.Mount); err != nil {
		return fmt.Errorf("mount containers disk: %w", err)
	}
	// The disk's root is the user's: rootless Podman makes storage/ in it.
	if err := ensureOwner(d.path(dir), d.uid, d.gid); err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	return nil
}

// writePodmanConfig is fast, so it runs inline: once it is done a podman
// the user starts finds everything it needs.
func (d *diskPrep) writePodmanConfig() error {
	cfgDir := d.home + "/.config/containers"
	for _, dir := range []string{cfgDir, d.runtimeDir()} {
		if err := d.mkdirOwned(dir, 0o700, d.uid, d.gid); err != nil {
			return fmt.Errorf("prepare %s: %w", dir, err)
		}
	}
	files := map[string]string{
		"storage.conf":    d.storageConf(),
		"containers.conf": d.containersConf(),
		"registries.conf": registriesConf,
		"policy.json":     policyJSON,
	}
	for name, content := range files {
		if err := d.writeOwned(filepath.Join(cfgDir, name), content, 0o644, d.uid, d.gid); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		if err := d.ensureSubIDs(f); err != nil {
			return fmt.Errorf("subordinate ids in %s: %w", f, err)
		}
	}
	if err := d.userNamespaceDevices(); err != nil {
		return err
	}
	// Rootless Podman warns on every command when / is not shared: its
	// containers' mounts would not propagate.
	if err := d.e.sys.Mount("", d.path("/"), "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make / a shared mount: %w", err)
	}
	return nil
}

func (d *diskPrep) storageConf() string {
	return fmt.Sprintf(`# Written by loftd's guest init at every boot.
[storage]
driver = "btrfs"
runroot = "%s/containers"
graphroot = "%s/storage"
`, d.runtimeDir(), d.containersDir())
}

// containersConf: no systemd in the guest, so cgroupfs and file events;
// without a cgroup delegated to the user rootless Podman cannot make
// cgroups at all, so it is told not to try. Rootless networking is
// slirp4netns (the kernel has TUN but no netfilter, so no bridge).
func (d *diskPrep) containersConf() string {
	var b strings.Builder
	b.WriteString("# Written by loftd's guest init at every boot.\n[containers]\nlog_driver = \"k8s-file\"\nnetns = \"slirp4netns\"\n")
	if !d.cgroupDelegated() {
		b.WriteString("cgroups = \"disabled\"\n")
	}
	b.WriteString("\n[network]\ndefault_rootless_network_cmd = \"slirp4netns\"\n")
	b.WriteString("\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"crun\"\n")
	if rt := d.sysboxRuntime(); rt != "" {
		fmt.Fprintf(&b, "\n[engine.runtimes]\nsysbox-runc = [%q]\n", rt)
	}
	return b.String()
}

// cgroupDelegated says whether the user owns the cgroup the init runs in
// (as systemd's Delegate= would give them); the guest has no systemd, so
// normally not.
func (d *diskPrep) cgroupDelegated() bool {
	data, err := os.ReadFile(d.path("/proc/self/cgroup"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			var st unix.Stat_t
			if unix.Stat(d.path(filepath.Join("/sys/fs/cgroup", rest)), &st) == nil {
				return int(st.Uid) == d.uid && d.uid != 0
			}
		}
	}
	return false
}

const registriesConf = `# Written by loftd's guest init at every boot.
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
`

// policyJSON accepts any image: this is a single-user development VM and
// the images come from the registries the user names; a stricter policy
// belongs in the image's /etc/containers.
const policyJSON = `{"default": [{"type": "insecureAcceptAnything"}]}
`

// ensureSubIDs gives the user subordinate ids in file (/etc/subuid or
// /etc/subgid) when it has none: subIDCount ids from subIDStart, moved
// past the user's own id when that falls in the range (never 0: the range
// starts above it).
func (d *diskPrep) ensureSubIDs(file string) error {
	data, err := os.ReadFile(d.path(file))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && (name == d.user || name == strconv.Itoa(d.uid)) {
			return nil
		}
	}
	return appendFile(d.path(file), fmt.Sprintf("%s:%d:%d\n", d.user, subIDRange(d.uid, d.gid), subIDCount))
}

// subIDRange returns the first subordinate id for a user whose own ids
// are uid and gid.
func subIDRange(uid, gid int) int {
	start := subIDStart
	for _, id := range []int{uid, gid} {
		if id >= start && id < start+subIDCount {
			start = id + 1
		}
	}
	for _, id := range []int{uid, gid} { // moved past one, into the other
		if id >= start && id < start+subIDCount {
			start = id + 1
		}
	}
	return start
}

// userNamespaceDevices makes user namespaces, /dev/net/tun (slirp4netns)
// and /dev/shm (Podman's locks) usable.
func (d *diskPrep) userNamespaceDevices() error {
	mun := d.path("/proc/sys/user/max_user_namespaces")
	if b, err := os.ReadFile(mun); err == nil && strings.TrimSpace(string(b)) == "0" {
		if err := os.WriteFile(mun, []byte("15000\n"), 0o644); err != nil {
			return fmt.Errorf("enable user namespaces: %w", err)
		}
	}
	tun := d.path("/dev/net/tun")
	if _, err := os.Stat(tun); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(tun), 0o755); err != nil {
			return err
		}
		if err := unix.Mknod(tun, unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200))); err != nil {
			return fmt.Errorf("mknod /dev/net/tun: %w", err)
		}
	}
	if err := os.Chmod(tun, 0o666); err != nil {
		return fmt.Errorf("chmod /dev/net/tun: %w", err)
	}
	shm := d.path("/dev/shm")
	if !isMountPoint(shm) {
		if err := os.MkdirAll(shm, 0o755); err != nil {
			return err
		}
		if err := d.e.sys.Mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount /dev/shm: %w", err)
		}
	}
	return nil
}

// isMountPoint: /dev/shm on devtmpfs has tmpfs's magic too, so the magic
// cannot tell it is mounted; a device other than its parent's can.
func isMountPoint(p string) bool {
	var a, b unix.Stat_t
	if unix.Stat(p, &a) != nil || unix.Stat(filepath.Dir(p), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

func (d *diskPrep) writeDockerShim() error {
	if err := os.MkdirAll(d.path("/usr/local/bin"), 0o755); err != nil {
		return err
	}
	return d.writeOwned("/usr/local/bin/docker", "#!/bin/sh\n# Written by loftd's guest init: the image has no docker.\nexec podman \"$@\"\n", 0o755, 0, 0)
}

// startPodmanPrep runs what is slow in the background as the user: a first
// `podman images`, which sets up the btrfs storage and the pause process,
// after `podman system migrate` when the disk's store was last used by
// another Podman (needsMigrate). Not `podman info`: it also asks dpkg which
// package owns conmon, crun and slirp4netns (dpkg-query reads every
// package's file list over virtiofs), 6.8 s against 2.1-2.4 s for
// `podman images` on a warm store under TCG, CPU the user's first commands
// need. Its status (exit code and milliseconds)
// lands in PodmanPrepStatus; nothing waits for it. On a store that needs
// no migration the init first makes the pause process itself
// (podmanPause), in the background too, and both wait for an idle guest
// (awaitIdle): a warm-up must not slow the workload, or a first prompt.
func (d *diskPrep) startPodmanPrep() error {
	for _, f := range []string{PodmanPrepStatus, PodmanPrepLog} {
		if err := d.writeOwned(f, "", 0o644, d.uid, d.gid); err != nil {
			return err
		}
	}
	d.writeStatus(PodmanPrepStatus, "running")
	prep := "podman images --quiet"
	stamp := d.podmanStamp()
	migrate, err := d.needsMigrate(stamp)
	if err != nil {
		return err
	}
	if migrate {
		// The stamp is written once the migration succeeded, so an
		// interrupted one runs again at the next boot.
		prep = fmt.Sprintf("podman system migrate && printf %%s '%s' > %s && %s", stamp, d.podmanStampPath(), prep)
	}
	// The prep's time counts from its start, the pause process included.
	argv := func() []string {
		script := fmt.Sprintf(`s=%d; %s; rc=$?; e=$(date +%%s%%N); echo "exit $rc $(( (e - s) / 1000000 ))ms" > %s`, time.Now().UnixNano(), prep, PodmanPrepStatus)
		return []string{d.path(d.lookBin("sh")), "-c", script}
	}
	if migrate {
		// At once: the migration stops any pause process, so it must
		// be done before the user's first Podman command.
		_, err := d.spawn(argv(), d.userEnv(), d.userCred(), PodmanPrepLog)
		return err
	}
	pause, err := d.preparePodmanPause()
	if err != nil {
		return err
	}
	d.writeStatus(PodmanPrepStatus, "waiting for an idle guest")
	go func() {
		// A warm-up only: it waits for the workload to wait (idle.go).
		t0 := time.Now()
		idle := awaitIdle(func() (cpuTimes, error) { return readCPUTimes(d.path(procStat)) }, time.Sleep, idleLimit)
		d.writeStatus(PodmanPrepStatus, fmt.Sprintf("running (after %s waiting for an idle guest, idle %v)", ms(time.Since(t0)), idle))
		if pause != nil {
			if err := pause.start(); err != nil {
				_ = appendFile(d.path(PodmanPrepLog), "loftd: pause process: "+err.Error()+" (podman makes its own)\n")
			}
		}
		if _, err := d.spawn(argv(), d.userEnv(), d.userCred(), PodmanPrepLog); err != nil {
			d.writeStatus(PodmanPrepStatus, "start: "+err.Error())
		}
	}()
	return nil
}

// podmanStampPath records, on the containers disk, which Podman last used
// its store.
func (d *diskPrep) podmanStampPath() string { return d.containersDir() + "/.loftd-podman" }

// podmanStamp identifies the image's Podman by its binary's size and
// modification time: no exec, which costs seconds under TCG.
func (d *diskPrep) podmanStamp() string {
	fi, err := os.Stat(d.path(d.lookBin("podman")))
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d.%d", fi.Size(), fi.ModTime().UnixNano())
}

// needsMigrate says whether the store needs `podman system migrate`: only
// when another Podman used it last. The migration also stops the rootless
// pause process, so running it at every boot, next to the user's first
// Podman commands, pulled the namespace out from under them (a `podman
// load` once hung with the guest idle for 12 minutes). A disk with no store
// yet gets the stamp now and needs none.
func (d *diskPrep) needsMigrate(stamp string) (bool, error) {
	old, err := os.ReadFile(d.path(d.podmanStampPath()))
	switch {
	case err == nil:
		return string(old) != stamp, nil
	case !errors.Is(err, os.ErrNotExist):
		return true, nil
	}
	if _, err := os.Stat(d.path(d.containersDir() + "/storage")); err == nil {
		return true, nil // a store from before the stamp
	}
	return false, d.writeOwned(d.podmanStampPath(), stamp, 0o644, d.uid, d.gid)
}

// listenPodman binds the user's Podman socket now and starts
// `podman system service` only when a client first connects: most
// sessions never use the Docker API, and a Podman service started at
// every boot costs CPU the user's command needs (under TCG, seconds). The
// service gets the socket by socket activation, so the first client's
// connection, queued in the backlog, is its first request.
func (d *diskPrep) listenPodman() error {
	if err := d.mkdirOwned(filepath.Dir(d.podmanSocket()), 0o700, d.uid, d.gid); err != nil {
		return err
	}
	sock, err := d.listenUnix(d.podmanSocket(), 0o600, d.uid, d.gid)
	if err != nil {
		return fmt.Errorf("podman socket %s: %w", d.podmanSocket(), err)
	}
	d.setenv("DOCKER_HOST", "unix://"+d.podmanSocket())
	argv := activated(d.path(d.lookBin("sh")), []string{d.path(d.lookBin("podman")), "system", "service", "--time=0"})
	go func() {
		defer sock.Close()
		// Readable = a connection is waiting; the service accepts it.
		fds := []unix.PollFd{{Fd: int32(sock.Fd()), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err == nil || !errors.Is(err, unix.EINTR) {
				break
			}
		}
		if _, err := d.spawn(argv, d.userEnv(), d.userCred(), podmanServiceLog, sock); err != nil {
			d.writeStatus(PodmanPrepStatus, "podman system service: "+err.Error())
		}
	}()
	return nil
}

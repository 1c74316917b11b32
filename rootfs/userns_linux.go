package rootfs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containers/storage/pkg/idtools"
	"github.com/containers/storage/pkg/unshare"
	"github.com/loftd/loftd/internal/child"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// keepIDEnv marks the re-executed child and carries the user's host
// "uid:gid", which the child needs to check its maps.
const keepIDEnv = "_LOFTD_KEEPID"

// IDMap maps Size consecutive ids from ContainerID (inside) to HostID.
type IDMap struct{ ContainerID, HostID, Size uint32 }

// KeepID is the keep-id user namespace of one user: ns 0 → the first
// subordinate id, ns U → host U, every other ns id → the rest of the
// subordinate range. Image files owned by root stay root, and files owned by
// the user inside are the user's outside.
type KeepID struct {
	UID, GID       uint32
	UIDMap, GIDMap []IDMap
	SubUID, SubGID IDMap // the subordinate ranges the maps use
}

// CurrentKeepID computes the keep-id maps of the user running this process
// from the user's subordinate ids (SubIDs).
func CurrentKeepID() (*KeepID, error) {
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("keep-id maps: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	uids, gids, err := SubIDs(u.Username)
	if err != nil {
		return nil, err
	}
	return KeepIDFor(u.Username, uint32(uid), uint32(gid), uids, gids)
}

// SubIDs reads user name's subordinate uid and gid ranges as
// containers/storage reads them for podman (idtools: /etc/subuid and
// /etc/subgid by name or numeric uid, or the NSS subid service in a
// libsubid build), lowest start first. The error says how to add a range.
func SubIDs(name string) (uids, gids []idtools.IDMap, err error) {
	m, err := idtools.NewIDMappings(name, name)
	if err != nil {
		fix := fmt.Sprintf("add a line %q to /etc/subuid and /etc/subgid (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s) and install the uidmap package (newuidmap, newgidmap)", name+":100000:65536", name)
		return nil, nil, fmt.Errorf("subordinate ids of %s: %w: %s", name, err, fix)
	}
	return m.UIDs(), m.GIDs(), nil
}

// KeepIDFor computes the keep-id maps of user name (uid, gid) from its
// subordinate ranges as SubIDs returns them. Only the first range is
// mapped: `loftd doctor` checks that same range, so it cannot pass a user
// whose run then fails.
func KeepIDFor(name string, uid, gid uint32, uids, gids []idtools.IDMap) (*KeepID, error) {
	k := &KeepID{UID: uid, GID: gid}
	for _, f := range []struct {
		file   string
		id     uint32
		ranges []idtools.IDMap
		sub    *IDMap
		out    *[]IDMap
	}{{"/etc/subuid", uid, uids, &k.SubUID, &k.UIDMap}, {"/etc/subgid", gid, gids, &k.SubGID, &k.GIDMap}} {
		r, ok := FirstSubID(f.ranges)
		if !ok {
			return nil, fmt.Errorf("keep-id maps for %s: no subordinate ids in %s: add a line %q (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s) and install the uidmap package (newuidmap, newgidmap)", name, f.file, name+":100000:65536", name)
		}
		*f.sub = r
		var err error
		if *f.out, err = keepIDMap(f.id, r.HostID, r.Size); err != nil {
			return nil, fmt.Errorf("keep-id maps for %s: %s: %w", name, f.file, err)
		}
	}
	return k, nil
}

// FirstSubID is the range keep-id maps: the first non-empty one, in
// idtools' order (lowest start first), with ContainerID 0.
func FirstSubID(ranges []idtools.IDMap) (IDMap, bool) {
	for _, r := range ranges {
		if r.Size > 0 && r.HostID >= 0 && uint64(r.HostID)+uint64(r.Size) <= 1<<32 {
			return IDMap{ContainerID: 0, HostID: uint32(r.HostID), Size: uint32(r.Size)}, true
		}
	}
	return IDMap{}, false
}

// keepIDMap builds the map for host id U with subordinate range
// [start, start+count): 0→start, 1..U-1→start+1.., U→U, U+1..→start+U..
func keepIDMap(id, start, count uint32) ([]IDMap, error) {
	if id == 0 {
		return nil, errors.New("keep-id is for unprivileged users; root needs no user namespace")
	}
	if count < id {
		return nil, fmt.Errorf("subordinate range %d:%d is smaller than uid %d: give the user at least %d ids (e.g. 65536)", start, count, id, id)
	}
	m := []IDMap{{0, start, 1}}
	if id > 1 {
		m = append(m, IDMap{1, start + 1, id - 1})
	}
	m = append(m, IDMap{id, id, 1})
	if rest := count - id; rest > 0 {
		m = append(m, IDMap{id + 1, start + id, rest})
	}
	return m, nil
}

// EnterOptions configure EnterKeepID.
type EnterOptions struct {
	// Dirs are created (0700) as the user before entering: a mkdir inside
	// would make them owned by the namespace's root (the first subordinate
	// id) and lock the user out. Put the state directory here.
	Dirs []string
	// RuntimeDir and ConfigDir become XDG_RUNTIME_DIR and XDG_CONFIG_HOME
	// inside (containers/storage wants them owned by the user). Defaults:
	// the current values, else /tmp/loftd-run-UID and ~/.config.
	RuntimeDir, ConfigDir string
	Log                   *slog.Logger
}

// InKeepID reports whether this process is the child EnterKeepID started.
func InKeepID() bool { return os.Getenv(keepIDEnv) != "" }

// EnterKeepID is for main, before anything touches storage. As real root it
// returns (false, nil): no namespace is needed. As an unprivileged user it
// runs this program again inside the keep-id namespace and exits with the
// child's status. In that child it checks that the maps took effect, makes
// the mount tree private, sets the XDG variables and returns (true, nil).
func EnterKeepID(opts EnterOptions) (bool, error) {
	if InKeepID() {
		return true, prepareKeepIDChild()
	}
	if os.Geteuid() == 0 {
		return false, nil
	}
	k, err := CurrentKeepID()
	if err != nil {
		return false, err
	}
	code, err := RunKeepID(k, os.Args, opts)
	if err != nil {
		return false, err
	}
	os.Exit(code)
	panic("unreachable")
}

// RunKeepID runs args (args[0] is ignored: the child is this executable)
// inside k's namespace with stdio inherited, forwards termination signals,
// and returns the exit code (128+n for a signal).
//
// The child must not outlive this process: a SIGKILLed loftd would leave
// the inner loftd, its helper, QEMU and virtiofsd running, holding the
// workspace lock and the terminal. Pdeathsig cannot be set here for good:
// the child's setresuid(0) in containers/storage's unshare constructor
// clears it, so the child sets it itself (dieWithParent) and checks that
// this process, whose pid it gets in keepIDParentEnv, is still its parent.
// containers/storage's unshare.ExecRunnable does not fit: it maps a death by
// signal to status 1 and logs through logrus.
func RunKeepID(k *KeepID, args []string, opts EnterOptions) (int, error) {
	env, err := prepareKeepIDParent(k, opts)
	if err != nil {
		return 0, err
	}
	cmd := unshare.Command(args...)
	cmd.UnshareFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS
	cmd.UseNewuidmap, cmd.UseNewgidmap = true, true
	// newgidmap writes the map, so setgroups may stay allowed; virtiofsd
	// (and the guest user's drop of privileges later) call setgroups(2),
	// which a "deny" would fail with EPERM.
	cmd.GidMappingsEnableSetgroups = true
	cmd.UidMappings, cmd.GidMappings = specMap(k.UIDMap), specMap(k.GIDMap)
	cmd.Env = append(env, fmt.Sprintf("%s=%d", keepIDParentEnv, os.Getpid()))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	defer signal.Stop(sigs)
	// The death signal covers the child until its constructor's
	// setresuid clears it.
	kid, err := child.StartFunc("keep-id child", cmd.Cmd, cmd.Start, child.Options{DeathSignal: keepIDDeathSignal})
	if err != nil {
		return 0, fmt.Errorf("enter keep-id user namespace: %w (is the uidmap package installed?)", err)
	}
	for {
		select {
		case s := <-sigs:
			_ = kid.Signal(s)
		case <-kid.Done():
			var ee *exec.ExitError
			if err := kid.Wait(); err != nil && !errors.As(err, &ee) {
				return 0, fmt.Errorf("keep-id child: %w", err)
			}
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if ws.Signaled() {
				return 128 + int(ws.Signal()), nil
			}
			return ws.ExitStatus(), nil
		}
	}
}

// keepIDParentEnv carries the pid of the process that started the keep-id
// child, which the child compares with its parent after setting its death
// signal.
const keepIDParentEnv = "_LOFTD_KEEPID_PARENT"

// keepIDDeathSignal ends the child when its parent dies. SIGTERM, not
// SIGKILL: the inner loftd then stops its VM, removes its task and restores
// the terminal, as after a kill of loftd itself.
const keepIDDeathSignal = syscall.SIGTERM

// dieWithParent sets the keep-id child's death signal again (its
// setresuid(0) cleared the one RunKeepID set) and fails when the parent is
// already gone (it died before the signal was set).
func dieWithParent() error {
	parent, err := strconv.Atoi(os.Getenv(keepIDParentEnv))
	if err != nil {
		return fmt.Errorf("keep-id child: bad %s=%q", keepIDParentEnv, os.Getenv(keepIDParentEnv))
	}
	if err := child.DieWithParent(keepIDDeathSignal, parent); err != nil {
		return fmt.Errorf("keep-id child: parent loftd: %w", err)
	}
	return nil
}

// prepareKeepIDParent creates the directories the child needs while we are
// still the plain user, and returns the child's environment.
func prepareKeepIDParent(k *KeepID, opts EnterOptions) ([]string, error) {
	if _, err := exec.LookPath("newuidmap"); err != nil {
		return nil, errors.New("enter keep-id user namespace: newuidmap not found (apt-get install uidmap)")
	}
	rt, cfg := opts.RuntimeDir, opts.ConfigDir
	if rt == "" {
		if rt = os.Getenv("XDG_RUNTIME_DIR"); rt == "" {
			rt = filepath.Join(os.TempDir(), fmt.Sprintf("loftd-run-%d", k.UID))
		}
	}
	if cfg == "" {
		if cfg = os.Getenv("XDG_CONFIG_HOME"); cfg == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return nil, fmt.Errorf("enter keep-id user namespace: %w", err)
			}
			cfg = filepath.Join(home, ".config")
		}
	}
	for _, d := range append([]string{rt, cfg}, opts.Dirs...) {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("enter keep-id user namespace: %w", err)
		}
	}
	return append(os.Environ(),
		fmt.Sprintf("%s=%d:%d", keepIDEnv, k.UID, k.GID),
		"XDG_RUNTIME_DIR="+rt, "XDG_CONFIG_HOME="+cfg), nil
}

// prepareKeepIDChild aborts when newuidmap failed: containers/storage then
// only warns and falls back to a one-line map, under which every image
// file would be owned by nobody.
func prepareKeepIDChild() error {
	if err := dieWithParent(); err != nil {
		return err
	}
	var uid, gid uint32
	if _, err := fmt.Sscanf(os.Getenv(keepIDEnv), "%d:%d", &uid, &gid); err != nil {
		return fmt.Errorf("keep-id child: bad %s=%q", keepIDEnv, os.Getenv(keepIDEnv))
	}
	for _, f := range []struct {
		file string
		id   uint32
	}{{"/proc/self/uid_map", uid}, {"/proc/self/gid_map", gid}} {
		b, err := os.ReadFile(f.file)
		if err != nil {
			return fmt.Errorf("keep-id child: %w", err)
		}
		want := fmt.Sprintf("%d %d 1", f.id, f.id)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) < 2 || !containsFields(lines, want) {
			return fmt.Errorf("keep-id child: %s is %q, want the keep-id map with %q: newuidmap/newgidmap failed (check /etc/subuid and /etc/subgid, and that the uidmap package is installed)", f.file, strings.TrimSpace(string(b)), want)
		}
	}
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("keep-id child: mount --make-rprivate /: %w", err)
	}
	return nil
}

func containsFields(lines []string, want string) bool {
	for _, l := range lines {
		if strings.Join(strings.Fields(l), " ") == want {
			return true
		}
	}
	return false
}

func specMap(m []IDMap) []specs.LinuxIDMapping {
	out := make([]specs.LinuxIDMapping, len(m))
	for i, e := range m {
		out[i] = specs.LinuxIDMapping{ContainerID: e.ContainerID, HostID: e.HostID, Size: e.Size}
	}
	return out
}

// KeepIDUser returns the host uid and gid of the user whose keep-id
// namespace this process runs in (ok is false outside one). Inside, the
// process is the namespace's root, so os.Getuid cannot tell.
func KeepIDUser() (uid, gid uint32, ok bool) {
	if _, err := fmt.Sscanf(os.Getenv(keepIDEnv), "%d:%d", &uid, &gid); err != nil {
		return 0, 0, false
	}
	return uid, gid, true
}

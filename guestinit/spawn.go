package guestinit

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// diskPrep is the state the disk steps share: the disks found by label
// and the user the prepared directories belong to.
type diskPrep struct {
	e        *enter
	disks    map[string]string // btrfs label → /dev node
	user     string
	uid, gid int
	home     string // guest path, e.g. /home/dev
}

// path returns the guest path p under the system root ("/" in the guest,
// a directory in tests).
func (d *diskPrep) path(p string) string { return filepath.Join(d.e.sys.SysRoot, p) }

// setenv sets name=value in the environment the workload inherits.
func (d *diskPrep) setenv(name, value string) {
	var env []string
	for _, kv := range d.e.sys.Environ() {
		if !strings.HasPrefix(kv, name+"=") {
			env = append(env, kv)
		}
	}
	d.e.sys.SetEnv(append(env, name+"="+value))
}

// mkdirOwned makes the guest directory p (and missing parents) with mode
// and gives every directory it made, and p itself, to uid:gid.
func (d *diskPrep) mkdirOwned(p string, mode os.FileMode, uid, gid int) error {
	full := d.path(p)
	var made []string
	for q := full; q != d.e.sys.SysRoot && q != "/" && q != "."; q = filepath.Dir(q) {
		if _, err := os.Lstat(q); err == nil {
			break
		}
		made = append(made, q)
	}
	if err := os.MkdirAll(full, mode); err != nil {
		return err
	}
	for _, q := range made {
		if err := os.Lchown(q, uid, gid); err != nil {
			return err
		}
	}
	return ensureOwnerMode(full, uid, gid, mode)
}

// ensureOwnerMode gives path to uid:gid with mode, changing only what
// differs: a chown or chmod that changes nothing still dirties the inode,
// and on a persistent disk that is a btrfs commit at the VM's end (the
// guest init's flush) for every boot.
func ensureOwnerMode(path string, uid, gid int, mode os.FileMode) error {
	if err := ensureOwner(path, uid, gid); err != nil {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	const bits = os.ModePerm | os.ModeSticky | os.ModeSetuid | os.ModeSetgid
	if fi.Mode()&bits != mode&bits {
		return os.Chmod(path, mode)
	}
	return nil
}

// ensureOwner is ensureOwnerMode for the owner alone.
func ensureOwner(path string, uid, gid int) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	return os.Lchown(path, uid, gid)
}

// writeOwned writes a guest file owned by uid:gid.
func (d *diskPrep) writeOwned(p, content string, mode os.FileMode, uid, gid int) error {
	full := d.path(p)
	if sameFile(full, content, mode, uid, gid) {
		// Most boots write what the last one did: on the virtiofs root a
		// write, chmod and chown are host round trips and dirty the host's
		// file, a read is fewer and dirties nothing.
		return nil
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		return err
	}
	if err := os.Chmod(full, mode); err != nil {
		return err
	}
	return os.Lchown(full, uid, gid)
}

// userEnv is the environment of what the init starts as the user.
func (d *diskPrep) userEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + d.home, "USER=" + d.user, "LOGNAME=" + d.user,
		fmt.Sprintf("XDG_RUNTIME_DIR=/run/user/%d", d.uid),
		"XDG_CONFIG_HOME=" + d.home + "/.config",
		"LANG=C.UTF-8",
	}
}

func (d *diskPrep) userCred() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(d.uid), Gid: uint32(d.gid), Groups: []uint32{}}
}

// spawn starts argv in the background, in a session of its own (the
// workload's terminal signals never reach it), with stdout and stderr
// appended to logPath and extra files from fd 3 on. The init never waits
// for it: its reaper collects it, whenever it ends.
func (d *diskPrep) spawn(argv, env []string, cred *syscall.Credential, logPath string, extra ...*os.File) (int, error) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	log, err := os.OpenFile(d.path(logPath), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	if cred != nil {
		_ = log.Chown(int(cred.Uid), int(cred.Gid))
	}
	// Through the init's reaper, whose loop then knows it has a child to
	// wait for; nobody reads the status.
	pid, _, err := initReaper.Start(argv[0], argv, &os.ProcAttr{
		Dir: "/", Env: env, Files: append([]*os.File{null, log, log}, extra...),
		Sys: &syscall.SysProcAttr{Setsid: true, Credential: cred},
	})
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", argv[0], err)
	}
	return pid, nil
}

// listenUnix binds a listening unix socket at the guest path p with mode,
// owned by uid:gid, and returns it as a file to hand to a socket-activated
// daemon (LISTEN_FDS=1: it becomes that daemon's fd 3). Clients that
// connect before the daemon accepts wait in the backlog, so nobody waits
// for the daemon to start and nobody races it.
func (d *diskPrep) listenUnix(p string, mode os.FileMode, uid, gid int) (*os.File, error) {
	full := d.path(p)
	_ = os.Remove(full)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: full, Net: "unix"})
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(false)
	defer l.Close()
	if err := os.Chmod(full, mode); err != nil {
		return nil, err
	}
	if err := os.Lchown(full, uid, gid); err != nil {
		return nil, err
	}
	f, err := l.File() // a blocking dup the daemon owns
	if err != nil {
		return nil, err
	}
	return f, nil
}

// activated is argv run by /bin/sh so that LISTEN_PID is the daemon's own
// pid (sh execs it): the systemd socket-activation protocol nix-daemon and
// podman system service both speak.
func activated(sh string, argv []string) []string {
	return append([]string{sh, "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`}, argv...)
}

// lookBin finds the first of names in the image's usual bin directories
// and returns its guest path ("" when none has it).
func (d *diskPrep) lookBin(name string) string {
	for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(d.path(p)); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// writeStatus writes one line to a /run/loftd status file.
func (d *diskPrep) writeStatus(p, line string) {
	_ = os.WriteFile(d.path(p), []byte(line+"\n"), 0o644)
}

// sameFile says whether the regular file at full (not a symlink) already
// has content, mode (permission bits) and owner uid:gid.
func sameFile(full, content string, mode os.FileMode, uid, gid int) bool {
	fd, err := unix.Open(full, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), full)
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG ||
		os.FileMode(st.Mode&0o7777) != mode.Perm() || int(st.Uid) != uid || int(st.Gid) != gid ||
		st.Size != int64(len(content)) {
		return false
	}
	buf := make([]byte, len(content)+1) // one more: a file that grew meanwhile differs
	n, err := io.ReadFull(f, buf)
	if err != io.ErrUnexpectedEOF && !(err == io.EOF && len(content) == 0) {
		return false
	}
	return string(buf[:n]) == content
}

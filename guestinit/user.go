package guestinit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// userStep creates the guest user in the guest root (the task's private
// copy: safe to edit), makes its home and runtime directory, sets the
// workload's environment and, unless LOFTD_ROOT=1, arranges the privilege
// drop the workload is started with (see dropCred).
func (e *enter) userStep() Step {
	g := e.guest
	desc := fmt.Sprintf("user %s %d:%d", g.User, g.UID, g.GID)
	if g.Root {
		desc += " (workload stays root)"
	}
	return Step{Desc: desc, Do: e.setupUser}
}

func (e *enter) setupUser() error {
	g := e.guest
	db, err := e.readUserDB()
	if err != nil {
		return err
	}
	shellOK := func(p string) bool {
		st, err := os.Stat(e.devPath(p))
		return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
	}
	a, err := ensureUser(db, g.User, g.UID, g.GID, shellOK)
	if err != nil {
		return err
	}
	for _, d := range []struct{ path, group string }{{"/dev/kvm", "kvm"}, {"/dev/net/tun", "tun"}} {
		if _, err := e.deviceGroup(db, d.path, d.group, a.Name); err != nil {
			return err
		}
	}
	// The device groups, and those the image lists the user in.
	a.Groups = memberGroups(db.group, a.Name, a.GID)
	if err := e.writeUserDB(db); err != nil {
		return err
	}
	if err := e.makeHome(a); err != nil {
		return err
	}
	runtime := fmt.Sprintf("/run/user/%d", a.UID)
	if g.Root {
		runtime = "/run/user/0"
	}
	if err := e.makeOwnedDir(runtime, 0o700, a, g.Root); err != nil {
		return err
	}
	who := a
	// Both accounts, for the SSH server's sessions (live.go).
	e.account, e.rootAcct = a, rootAccount(db, shellOK)
	if g.Root {
		who = e.rootAcct
	} else {
		e.drop = &a
	}
	e.shell = who.Shell
	e.sys.SetEnv(userEnv(e.sys.Environ(), e.cfg.Env, who, runtime))
	return nil
}

// userEnv sets the login variables for who on env. A variable the host
// passed (-e, or TERM from its terminal) is kept: the user asked for it.
func userEnv(env, fromHost []string, who account, runtime string) []string {
	explicit := map[string]bool{}
	for _, kv := range fromHost {
		name, _, _ := strings.Cut(kv, "=")
		explicit[name] = true
	}
	vals := []string{"HOME=" + who.Home, "USER=" + who.Name, "LOGNAME=" + who.Name,
		"SHELL=" + who.Shell, "XDG_RUNTIME_DIR=" + runtime}
	out := make([]string, 0, len(env)+len(vals))
	set := map[string]bool{}
	for _, kv := range vals {
		name, _, _ := strings.Cut(kv, "=")
		set[name] = true
	}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !set[name] || explicit[name] {
			out = append(out, kv)
		}
	}
	for _, kv := range vals {
		name, _, _ := strings.Cut(kv, "=")
		if !explicit[name] {
			out = append(out, kv)
		}
	}
	return out
}

// rootAccount is root's entry for a --root workload.
func rootAccount(db *userDB, shellOK func(string) bool) account {
	a := account{Name: "root", Home: "/root", Shell: "/bin/sh"}
	if i, f := db.passwd.find(pwUID, "0"); i >= 0 {
		f = pad(f, 7)
		a.Name = f[pwName]
		if f[pwHome] != "" {
			a.Home = f[pwHome]
		}
		if shellOK(f[pwShell]) {
			a.Shell = f[pwShell]
		}
	}
	return a
}

var userFiles = [...]string{"/etc/passwd", "/etc/group", "/etc/shadow"}

func (e *enter) readUserDB() (*userDB, error) {
	var files [3]*dbFile
	for i, p := range userFiles {
		data, err := os.ReadFile(e.devPath(p))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		files[i] = parseDB(data, err == nil)
	}
	return &userDB{passwd: files[0], group: files[1], shadow: files[2]}, nil
}

func (e *enter) writeUserDB(db *userDB) error {
	for i, f := range []*dbFile{db.passwd, db.group, db.shadow} {
		if !f.changed {
			continue
		}
		mode := os.FileMode(0o644)
		if i == 2 {
			mode = 0o600 // shadow
		}
		if err := writeFileAtomic(e.devPath(userFiles[i]), f.bytes(), mode); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic replaces path by data through a temporary file in the
// same directory and a rename, so a reader sees the old or the new file,
// never half of one. An existing file's mode and owner are kept; mode is
// for a new one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	uid, gid := 0, 0
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(s.Uid), int(s.Gid)
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".loftd-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil && (uid != 0 || gid != 0) {
		err = tmp.Chown(uid, gid)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// deviceGroup returns the gid that gives the user access to the device at
// path (-1 when there is no such device). A device of root's group gets
// the group called name and mode 0660, so the user (and only that group)
// can open it.
func (e *enter) deviceGroup(db *userDB, path, name, user string) (int, error) {
	st, err := os.Stat(e.devPath(path))
	if err != nil {
		return -1, nil
	}
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, nil
	}
	gid := supplementaryGroup(db.group, name, int(s.Gid), user)
	if s.Gid == 0 {
		if err := os.Chown(e.devPath(path), int(s.Uid), gid); err != nil {
			return -1, fmt.Errorf("give %s to group %s: %w", path, name, err)
		}
		if err := os.Chmod(e.devPath(path), st.Mode().Perm()|0o060); err != nil {
			return -1, fmt.Errorf("give %s to group %s: %w", path, name, err)
		}
	}
	return gid, nil
}

// makeHome creates the user's home when the image has none. An image's
// home is kept as it is, except that a renumbered user (the image's dev at
// another uid) gets back what it owned there.
func (e *enter) makeHome(a account) error {
	home := e.devPath(a.Home)
	if _, err := os.Lstat(home); err == nil {
		if a.OldUID == a.UID && a.OldGID == a.GID {
			return nil
		}
		return filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			s, ok := info.Sys().(*syscall.Stat_t)
			if !ok || int(s.Uid) != a.OldUID {
				return nil
			}
			gid := int(s.Gid)
			if gid == a.OldGID {
				gid = a.GID
			}
			if err := os.Lchown(p, a.UID, gid); err != nil {
				return fmt.Errorf("give %s to %s: %w", p, a.Name, err)
			}
			return nil
		})
	}
	return e.makeOwnedDir(a.Home, 0o700, a, false)
}

// makeOwnedDir creates dir (and its parents, root's) owned by a, or by
// root when asRoot.
func (e *enter) makeOwnedDir(dir string, mode os.FileMode, a account, asRoot bool) error {
	p := e.devPath(dir)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Mkdir(p, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	uid, gid := a.UID, a.GID
	if asRoot {
		uid, gid = 0, 0
	}
	if err := os.Chown(p, uid, gid); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return os.Chmod(p, mode)
}

// loginShell is the workload when the host gave no command: the user's
// login shell (set by the user step), as a login shell.
func (e *enter) loginShell() []string {
	if e.shell == "" {
		return []string{defaultShell, "-l"}
	}
	return []string{e.shell, "-l"}
}

// dropCred is the credential the workload is started with: the guest
// user's uid, gid and groups, set in the child between fork and exec
// (os.StartProcess: setgroups, setgid, setuid; any failure fails the start
// and nothing runs); nil with --root. It used to be a re-exec of the init
// ("guest-init drop", which checked the ids afterwards): under TCG starting
// a second Go runtime cost 0.2-1 s of every boot (docs/architecture.md,
// Decisions). The check it made holds by the kernel's rules, checked here
// beforehand: setuid from root to a non-zero uid clears the permitted,
// effective and ambient capabilities, so root cannot be regained, unless
// SECBIT_KEEP_CAPS or SECBIT_NO_SETUID_FIXUP is set; and uid 0 is refused
// (keeping root is --root's job).
func (e *enter) dropCred() (*syscall.Credential, error) {
	if e.drop == nil {
		return nil, nil
	}
	if e.drop.UID == 0 {
		return nil, fmt.Errorf("drop privileges to uid 0 would keep root (to keep root, use --root)")
	}
	if err := setuidDropsCaps(); err != nil {
		return nil, err
	}
	groups := make([]uint32, len(e.drop.Groups))
	for i, g := range e.drop.Groups {
		groups[i] = uint32(g)
	}
	return &syscall.Credential{Uid: uint32(e.drop.UID), Gid: uint32(e.drop.GID), Groups: groups}, nil
}

// The securebits that let a process keep capabilities across setuid
// (capabilities(7), linux/securebits.h).
const (
	secbitNoSetuidFixup = 1 << 2
	secbitKeepCaps      = 1 << 4
)

// setuidDropsCaps checks that setuid away from root drops every capability
// in this process's children, as the kernel does unless a securebit says
// otherwise (the children inherit this process's securebits).
func setuidDropsCaps() error {
	bits, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("drop privileges: PR_GET_SECUREBITS: %w", err)
	}
	if bits&(secbitNoSetuidFixup|secbitKeepCaps) != 0 {
		return fmt.Errorf("drop privileges: securebits %#x keep capabilities across setuid", bits)
	}
	return nil
}

// verifyDropped is the check after the drop (tailscale's "verify you cannot
// get back"), made on the workload itself: all four of its uids and gids
// are the user's, and it holds no capability (permitted, effective,
// ambient), so setuid(0) fails with EPERM. Read from /proc/PID/status.
func verifyDropped(pid, uid, gid int) error {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return fmt.Errorf("verify the privilege drop: %w", err)
	}
	return checkDropped(string(data), uid, gid)
}

// checkDropped reads a /proc/PID/status text (see verifyDropped).
func checkDropped(status string, uid, gid int) error {
	want := map[string]string{
		"Uid:":    strings.Repeat(fmt.Sprintf("%d ", uid), 4),
		"Gid:":    strings.Repeat(fmt.Sprintf("%d ", gid), 4),
		"CapPrm:": "0000000000000000 ", "CapEff:": "0000000000000000 ", "CapAmb:": "0000000000000000 ",
	}
	for _, line := range strings.Split(status, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if w, ok := want[f[0]]; ok {
			if got := strings.Join(f[1:], " ") + " "; got != w {
				return fmt.Errorf("privilege drop not in effect: %s %s, want %s", f[0], strings.TrimSpace(got), strings.TrimSpace(w))
			}
			delete(want, f[0])
		}
	}
	if len(want) > 0 {
		return fmt.Errorf("privilege drop: /proc status lacks %d of the lines checked", len(want))
	}
	return nil
}

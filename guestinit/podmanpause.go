package guestinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// podmanPausePID is where rootless Podman (4 and 5) looks for the process
// whose user and mount namespaces every podman command joins.
func (d *diskPrep) podmanPausePID() string { return d.runtimeDir() + "/libpod/tmp/pause.pid" }

// podmanPause is the pause process the init makes for the user's rootless
// Podman (preparePodmanPause, then start).
type podmanPause struct {
	d              *diskPrep
	argv           []string
	uidMap, gidMap string
	dir            *os.File // the pid file's directory, opened before any user process runs
}

// preparePodmanPause readies what podmanPause.start needs and must run
// before the user has a process: it makes the pid file's directory, which
// the user owns, and holds it open, so that the pid file is created in it
// whatever the user later renames or links there. nil when the image lacks
// unshare or sleep, or a pause pid file is there already (Podman then
// makes its own), or the user is root.
func (d *diskPrep) preparePodmanPause() (*podmanPause, error) {
	unshare, sleep := d.lookBin("unshare"), d.lookBin("sleep")
	if unshare == "" || sleep == "" || d.uid == 0 { // root's Podman has no pause process
		return nil, nil
	}
	p := &podmanPause{d: d,
		// --propagation unchanged: as Podman's own, which unshares
		// without remounting; unshare(1)'s default makes / private.
		argv: []string{d.path(unshare), "--user", "--mount", "--propagation", "unchanged", "--", d.path(sleep), "infinity"}}
	var err error
	if p.uidMap, err = d.podmanIDMap("/etc/subuid", d.uid); err != nil {
		return nil, err
	}
	if p.gidMap, err = d.podmanIDMap("/etc/subgid", d.gid); err != nil {
		return nil, err
	}
	pidFile := d.podmanPausePID()
	if _, err := os.Lstat(d.path(pidFile)); err == nil {
		return nil, nil
	}
	if err := d.mkdirOwned(filepath.Dir(pidFile), 0o700, d.uid, d.gid); err != nil {
		return nil, err
	}
	fd, err := unix.Open(d.path(filepath.Dir(pidFile)), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filepath.Dir(pidFile), err)
	}
	p.dir = os.NewFile(uintptr(fd), filepath.Dir(pidFile))
	return p, nil
}

// start makes the user's rootless Podman pause process:
// `unshare --user --mount -- sleep infinity` as the user (so that the
// user owns the namespace and their podman may join it), with the id maps
// newuidmap would write, written by the init as root, and its pid where
// Podman looks. Podman makes one itself otherwise, through newuidmap,
// newgidmap and a re-exec of podman in the new namespace: 3.9 s of the
// prep under TCG, against about 0.7 s this way. Podman only joins the
// user and mount namespaces of the pid in the file.
func (p *podmanPause) start() error {
	defer p.dir.Close()
	d := p.d
	pid, err := d.spawn(p.argv, d.userEnv(), d.userCred(), PodmanPrepLog)
	if err != nil {
		return err
	}
	kill := func() { _ = unix.Kill(pid, unix.SIGKILL) }
	if err := waitOwnUserNS(d.path("/proc"), pid); err != nil {
		kill()
		return err
	}
	for f, m := range map[string]string{"uid_map": p.uidMap, "gid_map": p.gidMap} {
		if err := os.WriteFile(d.path(fmt.Sprintf("/proc/%d/%s", pid, f)), []byte(m), 0); err != nil {
			kill()
			return fmt.Errorf("pause process %d: write %s: %w", pid, f, err)
		}
	}
	// O_EXCL: a podman the workload started meanwhile may have made its
	// own; theirs stays, ours goes.
	fd, err := unix.Openat(int(p.dir.Fd()), "pause.pid", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		kill()
		return nil
	}
	f := os.NewFile(uintptr(fd), "pause.pid")
	defer f.Close()
	if err := f.Chown(d.uid, d.gid); err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(pid))
	return err
}

// waitOwnUserNS waits until pid is in a user namespace other than the
// init's: unshare(1) has made its namespace and its maps may be written.
func waitOwnUserNS(proc string, pid int) error {
	self, err := os.Readlink(filepath.Join(proc, "self/ns/user"))
	if err != nil {
		return err
	}
	for range 2500 { // 5 s: unshare's exec is a few hundred ms under TCG
		ns, err := os.Readlink(filepath.Join(proc, strconv.Itoa(pid), "ns/user"))
		if err != nil {
			return fmt.Errorf("pause process %d: %w", pid, err)
		}
		if ns != self {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("pause process %d: no user namespace of its own after 5 s", pid)
}

// podmanIDMap is the id map rootless Podman gives its namespace: 0 is the
// user's own id, then each of the user's subordinate ranges in file, in
// order.
func (d *diskPrep) podmanIDMap(file string, own int) (string, error) {
	data, err := os.ReadFile(d.path(file))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	return idMap(own, subIDRanges(string(data), d.user, d.uid)), nil
}

// subIDRanges returns the [start, count] ranges /etc/subuid-style data
// gives user (by name or uid), skipping malformed lines.
func subIDRanges(data, user string, uid int) [][2]int {
	var out [][2]int
	for _, line := range strings.Split(data, "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 || (f[0] != user && f[0] != strconv.Itoa(uid)) {
			continue
		}
		start, err1 := strconv.Atoi(f[1])
		count, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || start < 0 || count <= 0 {
			continue
		}
		out = append(out, [2]int{start, count})
	}
	return out
}

// idMap renders a uid_map/gid_map: own as 0, the ranges from 1 on.
func idMap(own int, ranges [][2]int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "0 %d 1\n", own)
	next := 1
	for _, r := range ranges {
		fmt.Fprintf(&b, "%d %d %d\n", next, r[0], r[1])
		next += r[1]
	}
	return b.String()
}

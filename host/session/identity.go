package session

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/loftd/loftd/helper/virtiofs"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/rootfs"
	"golang.org/x/sys/unix"
)

// maxID is the largest uid or gid --uid and --gid take: (uid_t)-1 means
// "no change" to the kernel.
const maxID = 1<<32 - 2

// defaultGuestID is the guest user's id when its host owner is root: dev
// stays unprivileged in the guest, and its files still land as the owner's.
const defaultGuestID = 1000

// identity is who the guest user is: its ids in the guest, and the host
// ids its files land with through the shares (the workspace owner's).
type identity struct {
	guestUID, guestGID int
	hostUID, hostGID   int
}

// guestIdentity works the identity out. Rootless (and inside the keep-id
// namespace) both are the real user's. As root the owner is --uid/--gid,
// else SUDO_UID/SUDO_GID, else the workspace directory's owner (1000 when
// there is no workspace); the guest ids are the owner's, except that root
// becomes defaultGuestID.
func guestIdentity(flagUID, flagGID int, workspace string) (identity, error) {
	if u, g, inside := rootfs.KeepIDUser(); inside {
		return identity{int(u), int(g), int(u), int(g)}, nil
	}
	if os.Geteuid() != 0 {
		u, g := os.Getuid(), os.Getgid()
		return identity{u, g, u, g}, nil
	}
	ownerUID, ownerGID := defaultGuestID, defaultGuestID
	if workspace != "" {
		fi, err := os.Stat(workspace)
		if err != nil {
			return identity{}, fmt.Errorf("workspace owner: %w", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		ownerUID, ownerGID = int(st.Uid), int(st.Gid)
	}
	id := identity{hostUID: hostID(flagUID, "SUDO_UID", ownerUID), hostGID: hostID(flagGID, "SUDO_GID", ownerGID)}
	id.guestUID, id.guestGID = guestID(id.hostUID), guestID(id.hostGID)
	return id, nil
}

// hostID is flag when set, else $env when it holds a non-zero id (sudo
// from root says nothing), else owner.
func hostID(flag int, env string, owner int) int {
	if flag >= 0 {
		return flag
	}
	var n int
	if _, err := fmt.Sscan(os.Getenv(env), &n); err == nil && n > 0 && n <= maxID {
		return n
	}
	return owner
}

func guestID(host int) int {
	if host == 0 {
		return defaultGuestID
	}
	return host
}

// UserIDs is the guest user's ids in the guest (guestIdentity without a
// workspace: as root, --uid/--gid, else SUDO_UID/SUDO_GID, else 1000).
func UserIDs(flagUID, flagGID int) (uid, gid int) {
	id, _ := guestIdentity(flagUID, flagGID, "")
	return id.guestUID, id.guestGID
}

// shareIDs is the user namespace of the shares' virtiofsd as real root
// (nil otherwise: rootless, the keep-id namespace maps the guest's ids).
// The range for guest ids other than the user's is root's subordinate
// range in /etc/subuid and /etc/subgid, else virtiofs.DefaultRange.
func shareIDs(id identity) (*launch.ShareIDs, error) {
	if os.Geteuid() != 0 || rootfs.InKeepID() {
		return nil, nil
	}
	uids, gids := virtiofs.DefaultRange, virtiofs.DefaultRange
	if us, gs, err := rootfs.SubIDs("root"); err == nil {
		if r, ok := rootfs.FirstSubID(us); ok {
			uids = virtiofs.Range{Start: r.HostID, Size: r.Size}
		}
		if r, ok := rootfs.FirstSubID(gs); ok {
			gids = virtiofs.Range{Start: r.HostID, Size: r.Size}
		}
	}
	// In a container's user namespace (a pod with hostUsers: false) only
	// its own ids can be mapped.
	var err error
	if m, rerr := os.ReadFile("/proc/self/uid_map"); rerr == nil {
		if uids, err = virtiofs.Within(uids, string(m), uint32(id.hostUID)); err != nil {
			return nil, err
		}
	}
	if m, rerr := os.ReadFile("/proc/self/gid_map"); rerr == nil {
		if gids, err = virtiofs.Within(gids, string(m), uint32(id.hostGID)); err != nil {
			return nil, err
		}
	}
	return virtiofs.ShareIDs(virtiofs.Owner{
		GuestUID: uint32(id.guestUID), GuestGID: uint32(id.guestGID),
		HostUID: uint32(id.hostUID), HostGID: uint32(id.hostGID),
	}, uids, gids)
}

// errNoEntry: the guest user cannot enter the workspace.
var errNoEntry = errors.New("the guest user cannot enter the workspace")

// checkEnter refuses a workspace the guest user, host ids (uid, gid),
// cannot enter through the share: the guest would fail to chdir into
// /workspace and exit 126. Permission is the owner's, group's or others'
// search bit, as the kernel checks it for an id with no capability over
// the directory (which virtiofsd, in its user namespace, lacks for an
// owner outside its map).
func checkEnter(dir string, uid, gid int) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("workspace %s: %w", dir, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	perm := fi.Mode().Perm()
	bit := perm & 0o001
	switch {
	case int(st.Uid) == uid:
		bit = perm & 0o100
	case int(st.Gid) == gid:
		bit = perm & 0o010
	}
	if bit != 0 {
		return nil
	}
	return fmt.Errorf("%w: %s is owned by uid %d gid %d with mode %04o, and the guest user is host uid %d gid %d: run with --uid %d --gid %d (as root), or let it in (chmod o+x %s)",
		errNoEntry, dir, st.Uid, st.Gid, perm, uid, gid, st.Uid, st.Gid, dir)
}

// checkWorkspaceEntry refuses, before boot, a workspace (src) the guest
// user (id) cannot enter. Rootless, virtiofsd has the user's own groups:
// the kernel's access check says. As root it has only the mapped ids.
func checkWorkspaceEntry(src string, id identity) error {
	if os.Geteuid() != 0 || rootfs.InKeepID() {
		if err := unix.Access(src, unix.X_OK); err != nil {
			return fmt.Errorf("%w: %s: %v (let your user in: chmod u+x %s)", errNoEntry, src, err, src)
		}
		return nil
	}
	return checkEnter(src, id.hostUID, id.hostGID)
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

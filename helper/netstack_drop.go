package helper

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/loftd/loftd/internal/child"
	"golang.org/x/sys/unix"
)

// nobody is the uid and gid the netstack drops to.
const nobody = 65534

// dropPrivileges gives up root once the netstack holds everything it needs
// (its denial file, the published ports bound, the CA and secrets read, the
// system roots loaded): it parses every frame the guest sends, so a flaw
// in the stack must not be root on the host. As tailscale does: no new
// privileges, supplementary groups, then gid, then uid (Go applies each to
// every thread), then verify that root cannot come back. Not root: nothing
// to drop. A user namespace without nobody mapped (a rootless helper's may
// lack it) keeps its ids, said under --debug: it holds no host privilege.
func dropPrivileges(log *slog.Logger, parent int) error {
	if os.Geteuid() != 0 {
		return nil
	}
	// Any id change below clears the death signal the helper asked for; a
	// netstack that outlived a killed helper would hold its socket
	// forever. So it is asked for again, whichever way this returns.
	defer func() {
		if derr := child.DieWithParent(syscall.SIGKILL, parent); derr != nil {
			log.Error("netstack", "err", derr)
			os.Exit(1)
		}
	}()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("netstack: no_new_privs: %w", err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return dropError("setgroups", err, log)
	}
	if err := syscall.Setgid(nobody); err != nil {
		return dropError("setgid", err, log)
	}
	if err := syscall.Setuid(nobody); err != nil {
		return dropError("setuid", err, log)
	}
	if syscall.Setuid(0) == nil || syscall.Setgid(0) == nil {
		return fmt.Errorf("netstack: dropped to uid %d but could become root again", nobody)
	}
	log.Debug("netstack dropped root", "uid", os.Getuid(), "gid", os.Getgid())
	return nil
}

// dropError: EINVAL is an id this user namespace does not map (kept, with
// a debug line); anything else fails the netstack.
func dropError(op string, err error, log *slog.Logger) error {
	if errors.Is(err, syscall.EINVAL) {
		log.Debug("netstack keeps its ids: nobody is not mapped here", "op", op)
		return nil
	}
	return fmt.Errorf("netstack: %s %d: %w", op, nobody, err)
}

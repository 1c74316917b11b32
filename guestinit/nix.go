package guestinit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/loftd/loftd/contract"
	"golang.org/x/sys/unix"
)

// Guest paths of the nix disk and its status.
const (
	NixDiskMount  = "/run/loftd/nix-disk"
	NixPrepStatus = "/run/loftd/nix-prep.status"
	nixDaemonLog  = "/run/loftd/nix-daemon.log"
	nixSocket     = "/nix/var/nix/daemon-socket/socket"
	// nixSeeded on the disk says /nix/var was laid out once: a second
	// boot leaves what the user's nix made of it alone.
	nixSeeded = ".loftd-nix-seeded"
	// The ids Nix's own installer gives its build users when the image
	// has none (Debian's nix-bin leaves them to nix-setup-systemd, a
	// recommendation the default image does not install).
	nixbldGID   = 30000
	nixbldUsers = 10
)

func (d *diskPrep) nixSteps() []Step {
	steps := []Step{
		{Desc: nixDiskMount("LABEL=" + contract.NixLabel).String(), Do: d.mountNixDisk},
		{Desc: nixOverlayMount.String(), Do: d.mountNixOverlay},
		{Desc: "seed /nix/var once; chown root:nixbld /nix/store; chmod 1775 /nix/store", Do: d.seedNix},
	}
	if d.lookBin("nix-daemon") != "" && d.lookBin("sh") != "" {
		steps = append(steps, Step{Desc: "nix-daemon & (socket-activated on " + nixSocket + "); NIX_REMOTE=daemon", Do: d.startNixDaemon})
	}
	return steps
}

// nixDiskMount mounts the nix disk dev (found by its label) where the
// /nix overlay takes its upper layer from.
func nixDiskMount(dev string) mountOp {
	return mountOp{FSType: "btrfs", Source: dev, Target: NixDiskMount, Flags: unix.MS_NOATIME | unix.MS_NODEV}
}

// nixOverlayMount puts the disk's upper over the image's /nix. Mounting on
// the lower's own path works: lowerdir is resolved before the mount covers
// it. An image without /nix gets an empty one as the lower.
var nixOverlayMount = mountOp{FSType: "overlay", Source: "overlay", Target: "/nix", Flags: unix.MS_NOATIME | unix.MS_NODEV,
	Lower: "/nix", Upper: NixDiskMount + "/upper", Work: NixDiskMount + "/work"}

func (d *diskPrep) mountNixDisk() error {
	if err := os.MkdirAll(d.path(NixDiskMount), 0o755); err != nil {
		return err
	}
	if err := nixDiskMount(d.disks[contract.NixLabel]).under(d.e.sys.SysRoot).do(d.e.sys.Mount); err != nil {
		return fmt.Errorf("mount nix disk: %w", err)
	}
	return nil
}

func (d *diskPrep) mountNixOverlay() error {
	op := nixOverlayMount
	for _, dir := range []string{op.Target, op.Upper, op.Work} {
		if err := os.MkdirAll(d.path(dir), 0o755); err != nil {
			return fmt.Errorf("prepare /nix overlay: %w", err)
		}
	}
	if err := op.under(d.e.sys.SysRoot).do(d.e.sys.Mount); err != nil {
		return fmt.Errorf("mount /nix overlay: %w", err)
	}
	return nil
}

// seedNix lays out /nix/var the way Nix's installer does, once per disk,
// and on every boot makes the build users exist in this image's
// /etc/group and gives them the store (the image may have changed).
func (d *diskPrep) seedNix() error {
	// The build users only where there is a Nix to use them: an image
	// without nix gets a /nix on the disk, and its user database untouched.
	gid := 0
	if d.hasNix() {
		var err error
		if gid, err = d.ensureNixbld(); err != nil {
			return fmt.Errorf("nix build users: %w", err)
		}
	}
	marker := d.path(filepath.Join(NixDiskMount, nixSeeded))
	if _, err := os.Stat(marker); os.IsNotExist(err) {
		for _, dir := range []string{
			"/nix/store", "/nix/var/nix/db", "/nix/var/nix/gcroots/per-user",
			"/nix/var/nix/profiles/per-user", "/nix/var/nix/temproots",
			"/nix/var/nix/userpool", "/nix/var/nix/daemon-socket", "/nix/var/log/nix/drvs",
		} {
			if err := os.MkdirAll(d.path(dir), 0o755); err != nil {
				return fmt.Errorf("seed %s: %w", dir, err)
			}
		}
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return fmt.Errorf("seed /nix/var: %w", err)
		}
	} else if err != nil {
		return err
	}
	if err := os.MkdirAll(d.path("/nix/store"), 0o755); err != nil {
		return err
	}
	if err := ensureOwnerMode(d.path("/nix/store"), 0, gid, 0o775|os.ModeSticky); err != nil {
		return fmt.Errorf("chown root:%d, chmod 1775 /nix/store: %w", gid, err)
	}
	// The user's own profile and GC roots, as nix-daemon would make them.
	for _, dir := range []string{"/nix/var/nix/profiles/per-user/" + d.user, "/nix/var/nix/gcroots/per-user/" + d.user} {
		if err := d.mkdirOwned(dir, 0o755, d.uid, d.gid); err != nil {
			return fmt.Errorf("seed %s: %w", dir, err)
		}
	}
	return nil
}

// hasNix: the image ships Nix (its daemon or its store tool).
func (d *diskPrep) hasNix() bool {
	return d.lookBin("nix-daemon") != "" || d.lookBin("nix-store") != ""
}

// ensureNixbld returns the gid of group nixbld, adding the group and
// nixbld1..10 (as Nix's installer and Debian's nix-setup-systemd do) to
// this boot's /etc/group and /etc/passwd when the image lacks them.
func (d *diskPrep) ensureNixbld() (int, error) {
	groups, err := os.ReadFile(d.path("/etc/group"))
	if err != nil && !os.IsNotExist(err) {
		return 0, err
	}
	for _, line := range strings.Split(string(groups), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == "nixbld" {
			return strconv.Atoi(f[2])
		}
	}
	var members, users []string
	for i := 1; i <= nixbldUsers; i++ {
		members = append(members, fmt.Sprintf("nixbld%d", i))
		users = append(users, fmt.Sprintf("nixbld%d:x:%d:%d:Nix build user %d:/var/empty:/usr/sbin/nologin\n", i, nixbldGID+i, nixbldGID, i))
	}
	if err := appendFile(d.path("/etc/group"), fmt.Sprintf("nixbld:x:%d:%s\n", nixbldGID, strings.Join(members, ","))); err != nil {
		return 0, err
	}
	if err := appendFile(d.path("/etc/passwd"), strings.Join(users, "")); err != nil {
		return 0, err
	}
	return nixbldGID, nil
}

// appendFile appends text to path (creating it), on a line of its own.
func appendFile(path, text string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		text = "\n" + text
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// startNixDaemon binds the daemon socket itself and hands it to
// nix-daemon (socket activation), so a client that connects before the
// daemon is up waits in the backlog instead of failing: the user's
// command never waits for the daemon, and never races it either.
func (d *diskPrep) startNixDaemon() error {
	d.writeStatus(NixPrepStatus, "starting nix-daemon")
	sock, err := d.listenUnix(nixSocket, 0o666, 0, 0)
	if err != nil {
		d.writeStatus(NixPrepStatus, "failed: listen "+nixSocket+": "+err.Error())
		return fmt.Errorf("nix-daemon socket %s: %w", nixSocket, err)
	}
	defer sock.Close()
	argv := activated(d.path(d.lookBin("sh")), []string{d.path(d.lookBin("nix-daemon"))})
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	pid, err := d.spawn(argv, env, nil, nixDaemonLog, sock)
	if err != nil {
		d.writeStatus(NixPrepStatus, "failed: "+err.Error())
		return err
	}
	d.writeStatus(NixPrepStatus, fmt.Sprintf("nix-daemon pid %d on %s", pid, nixSocket))
	d.setenv("NIX_REMOTE", "daemon")
	return nil
}

package session

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/helper/krunline"
	"github.com/loftd/loftd/rootfs/inroot"
	"golang.org/x/sys/unix"
)

// checkRootfsDir resolves a --rootfs directory and refuses one that holds
// loftd's state or the workspace: the task's overlay would stack on its own
// upper directory, and the guest would see the host's state through /.
func checkRootfsDir(spec, stateDir, workspace string) (string, error) {
	abs, err := filepath.Abs(spec)
	if err != nil {
		return "", fmt.Errorf("rootfs %s: %w", spec, err)
	}
	dir, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("rootfs %s: %w (pass an existing directory to --rootfs)", abs, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("rootfs %s: %w (pass an existing directory to --rootfs)", abs, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("rootfs %s: not a directory (pass a directory to --rootfs)", abs)
	}
	for _, in := range []struct{ what, path string }{{"the state directory", stateDir}, {"the workspace", workspace}} {
		p, err := filepath.EvalSymlinks(in.path)
		if err != nil {
			p = in.path
		}
		if within(dir, p) {
			return "", Usagef("--rootfs %s contains %s %s: pass a directory that holds only the guest's root filesystem (e.g. one made with 'debootstrap' or 'tar -x'), not / or a parent of %s", abs, in.what, in.path, in.path)
		}
	}
	return dir, nil
}

// guestWrittenDirs are the --rootfs directories the guest init writes to on
// every boot (/etc/hosts, /etc/passwd, the guest user's home).
var guestWrittenDirs = []string{"etc", "home"}

// checkRootlessRootfs refuses, in the keep-id namespace, a --rootfs whose
// /etc or /home its root cannot write: owned by a host user outside the
// namespace's map (host root, say), the directory is beyond the namespace
// root's capabilities, so the overlay cannot copy it up and the guest
// init's first write (/etc/hosts) would fail inside the VM with a bare
// "permission denied". A read-only directory is fine (EROFS): writes go to
// the task's upper directory.
func checkRootlessRootfs(dir string) error {
	for _, d := range guestWrittenDirs {
		p := filepath.Join(dir, d)
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			continue
		}
		err = unix.Faccessat(unix.AT_FDCWD, p, unix.W_OK, unix.AT_EACCESS)
		if !errors.Is(err, unix.EACCES) {
			continue
		}
		owner := -1
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = int(st.Uid)
		}
		return fmt.Errorf("rootless --rootfs %s: /%s there belongs to a host user outside your user namespace (it shows as uid %d in it; host root, say), so the guest, root in the VM, cannot write it (/etc/hosts, the guest user); copy the tree as your own (cp -a --no-preserve=ownership %s ~/rootfs) and pass the copy, or run loftd as root", dir, d, owner, dir)
	}
	return nil
}

// within reports whether p is dir or below it.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// guestInitSource finds the guest init to inject: --guest-init PATH, else
// GuestInitPart's search order (next to loftd first).
func guestInitSource(spec string) (string, error) {
	f, err := partLocator.Find(GuestInitPart, spec)
	return f.Path, err
}

// injectGuestInit copies the static guest init to ROOT/.loftd/guest-init,
// so any image boots with loftd's init. "image" keeps the image's own. A
// copy, not a link: the guest may write to its root, and must never reach
// the host's binary. root is the task's private root, whose contents the
// image controls: the write never follows a symlink planted there.
func injectGuestInit(root, spec string) error {
	if spec == "image" {
		ok, err := inroot.Exists(root, contract.GuestInitPath)
		if err != nil {
			return fmt.Errorf("--guest-init image: %w", err)
		}
		if !ok {
			return fmt.Errorf("--guest-init image: the image has no %s (drop the flag to inject loftd's)", contract.GuestInitPath)
		}
		return nil
	}
	src, err := guestInitSource(spec)
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("inject guest init: %w", err)
	}
	defer in.Close()
	if err := inroot.WriteFile(root, contract.GuestInitPath, in, 0o755); err != nil {
		return fmt.Errorf("inject guest init: %w", err)
	}
	return nil
}

// prepareKrunRoot readies the root for a status report: a status file the
// image shipped (or a planted one) must not pass for the guest init's, so
// it is removed before boot. With --krun-init (testing) it also injects
// libkrun's init as /init.krun, where krun_start_enter's kernel command
// line looks for it (helper/krunline).
func prepareKrunRoot(root, krunInit string) error {
	if err := inroot.Remove(root, contract.StatusPath); err != nil {
		return fmt.Errorf("clear guest status: %w", err)
	}
	if krunInit == "" {
		return nil
	}
	in, err := os.Open(krunInit)
	if err != nil {
		return fmt.Errorf("inject libkrun init: %w (--krun-init names a built init.krun)", err)
	}
	defer in.Close()
	if err := inroot.WriteFile(root, krunline.InitPath, in, 0o755); err != nil {
		return fmt.Errorf("inject libkrun init: %w", err)
	}
	return nil
}

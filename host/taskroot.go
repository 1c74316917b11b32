package host

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/loftd/loftd/guestinit/contract"
)

// prepareRoot decides the task's root filesystem: a directory the user
// named with --rootfs, or a private snapshot of an image.
func (s *session) prepareRoot() error {
	if s.opts.RootfsDir != "" {
		root, err := filepath.Abs(s.opts.RootfsDir)
		if err != nil {
			return fmt.Errorf("rootfs %s: %w", s.opts.RootfsDir, err)
		}
		fi, err := os.Stat(root)
		if err != nil {
			return fmt.Errorf("rootfs %s: %w (pass an existing directory to --rootfs)", root, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("rootfs %s: not a directory (pass a directory to --rootfs)", root)
		}
		s.root = root
		return nil
	}
	return s.prepareImageRoot()
}

// guestInitSource finds the guest init to inject: --guest-init PATH, else
// loftd-guest-init next to the running binary.
func guestInitSource(spec string) (string, error) {
	if spec != "" {
		return spec, nil
	}
	exe, err := executable()
	if err != nil {
		return "", fmt.Errorf("find guest init: %w", err)
	}
	p := filepath.Join(filepath.Dir(exe), "loftd-guest-init")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("find guest init: %s is missing (build it with 'make build', or pass --guest-init PATH)", p)
	}
	return p, nil
}

// injectGuestInit copies the static guest init to ROOT/.loftd/guest-init,
// so any image boots with loftd's init. "image" keeps the image's own. A
// copy, not a link: the guest may write to its root, and must never reach
// the host's binary.
func injectGuestInit(root, spec string) error {
	dst := filepath.Join(root, contract.GuestInitPath)
	if spec == "image" {
		if _, err := os.Stat(dst); err != nil {
			return fmt.Errorf("--guest-init image: the image has no %s (drop the flag to inject loftd's)", contract.GuestInitPath)
		}
		return nil
	}
	src, err := guestInitSource(spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("inject guest init: %w", err)
	}
	return copyFile(src, dst, 0o755)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("inject guest init: %w", err)
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("inject guest init: %w", err)
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, mode)
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("inject guest init %s: %w", dst, err)
	}
	return nil
}

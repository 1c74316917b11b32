package guestinit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/loftd/loftd/contract"
	"golang.org/x/sys/unix"
)

// bootstrapStep runs the workspace's bootstrap script when the host put
// one on the root share (contract.BootstrapPath): the host decides that
// it is due. It runs as the workload will (the guest user, or root with
// --root) in the workspace, its output in contract.BootstrapLogPath. A
// failure does not stop the workload: it is said on stderr, and the host
// runs the script again on the next boot.
func (e *enter) bootstrapStep() Step {
	return Step{Desc: "bootstrap " + contract.BootstrapPath, Do: e.runBootstrap}
}

func (e *enter) runBootstrap() error {
	script := e.devPath(contract.BootstrapPath)
	if _, err := os.Lstat(script); os.IsNotExist(err) {
		return nil
	}
	// The init writes the log and the status (root, O_NOFOLLOW), so the
	// script cannot turn either into a link the host would then read.
	logf, err := openNoFollow(e.devPath(contract.BootstrapLogPath))
	if err != nil {
		return fmt.Errorf("bootstrap log: %w", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	defer devnull.Close()
	cred, err := e.dropCred()
	if err != nil {
		return err
	}
	var attr *syscall.SysProcAttr
	if cred != nil {
		attr = &syscall.SysProcAttr{Credential: cred}
	}
	dir := contract.WorkspaceMount
	if e.guest.WorkspaceTag == "" {
		dir = "/"
	}
	// The script is on the root share with the mode the host gave it; run
	// it through sh so an image's noexec mounts or a lost x bit do not matter.
	status := runCommand([]string{"/bin/sh", script}, dir, []*os.File{devnull, logf, logf}, attr, logf)
	if err := writeNoFollow(e.devPath(contract.BootstrapStatusPath), strconv.Itoa(status)+"\n"); err != nil {
		return fmt.Errorf("bootstrap status: %w", err)
	}
	if status != 0 {
		fmt.Fprintf(e.errw(), "loftd: the workspace's bootstrap script failed with status %d (its output is kept; it runs again on the next boot)\n", status)
	}
	return nil
}

func openNoFollow(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	_ = unix.Unlink(path)
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func writeNoFollow(path, s string) error {
	f, err := openNoFollow(path)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

package rootfs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// NewDirTask makes the task root of a directory the user names as a root
// filesystem (--rootfs DIR): an overlay with dir as its only, read-only
// lower layer and the upper and work directories in taskDir. Nothing is
// ever written to dir, so it may be read-only, and concurrent tasks over
// one dir each see only their own writes. backend is auto (kernel overlay,
// else fuse-overlayfs), overlay or fuse-overlay; btrfs-snapshot applies to
// images only and means auto here. Remove (or RemoveTaskRoot, as gc does)
// unmounts it and deletes the upper directory.
func NewDirTask(dir, taskDir, backend string, log *slog.Logger) (*Task, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(taskDir, 0o700); err != nil {
		return nil, fmt.Errorf("new task %s: %w", taskDir, err)
	}
	t := &Task{Dir: taskDir, Root: filepath.Join(taskDir, taskRootDir), Lower: dir}
	lowers := []string{dir}
	var err error
	switch backend {
	case BackendOverlay:
		t.Backend, t.Reason, err = backend, "configured", mountOverlay(t, lowers, false)
	case BackendFuseOverlay:
		t.Backend, t.Reason, err = backend, "configured", mountOverlay(t, lowers, true)
	case "", BackendAuto, BackendBtrfsSnapshot:
		why := "overlay over the --rootfs directory"
		if backend == BackendBtrfsSnapshot {
			why = "btrfs-snapshot applies to images; " + why
		}
		if err = mountOverlay(t, lowers, false); err == nil {
			t.Backend, t.Reason = BackendOverlay, why+": kernel overlay mounted"
			break
		}
		why += fmt.Sprintf(": kernel overlay failed (%v)", err)
		_ = RemoveTaskRoot(taskDir)
		if err = os.MkdirAll(taskDir, 0o700); err != nil {
			break
		}
		if err = mountOverlay(t, lowers, true); err != nil {
			err = fmt.Errorf("%s; fuse-overlayfs failed: %w (install fuse-overlayfs)", why, err)
			break
		}
		t.Backend, t.Reason = BackendFuseOverlay, why+"; fuse-overlayfs mounted"
	default:
		err = fmt.Errorf("unknown rootfs backend %q (want auto, overlay or fuse-overlay)", backend)
	}
	if err == nil {
		err = writeTaskRecord(t)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("new task %s over %s: %w", taskDir, dir, err), RemoveTaskRoot(taskDir))
	}
	log.Debug("task root ready", "root", t.Root, "lower", dir, "backend", t.Backend, "reason", t.Reason)
	return t, nil
}

package rootfs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Task root backends.
const (
	BackendAuto          = "auto"
	BackendBtrfsSnapshot = "btrfs-snapshot"
	BackendOverlay       = "overlay"
	BackendFuseOverlay   = "fuse-overlay"
)

// Names inside a task directory.
const (
	taskRootDir  = "rootfs"
	taskUpperDir = "upper"
	taskWorkDir  = "work"
	// taskLowersDir holds fuse-overlayfs's links to the lower layers.
	taskLowersDir = "lowers"
	taskRecord    = "rootfs.json"
)

// Task is one task's root filesystem. Nothing is copied to make it: a
// btrfs snapshot or an overlay over the image's layers.
type Task struct {
	Dir     string // the task directory given to NewTask
	Root    string // Dir/rootfs: the directory the VM boots from
	Backend string // btrfs-snapshot, overlay or fuse-overlay
	Reason  string // why Backend was chosen
	Image   *Image // the image, or nil for a directory's task (NewDirTask)
	Lower   string // the directory of NewDirTask, else ""
}

// NewTask materializes img's root filesystem at taskDir/rootfs. backend is
// auto (btrfs-snapshot when the store is on btrfs, else kernel overlay, else
// fuse-overlayfs), or one of them to force it. An overlay mount lives in the
// caller's mount namespace: the process must stay there until Remove.
func (s *Store) NewTask(ctx context.Context, img *Image, taskDir, backend string) (*Task, error) {
	if img == nil || img.TopLayer == "" {
		return nil, fmt.Errorf("new task %s: image has no layers", taskDir)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("new task %s: %w", taskDir, err)
	}
	if err := os.MkdirAll(taskDir, 0o700); err != nil {
		return nil, fmt.Errorf("new task %s: %w", taskDir, err)
	}
	t := &Task{Dir: taskDir, Root: filepath.Join(taskDir, taskRootDir), Image: img}
	var err error
	switch backend {
	case BackendBtrfsSnapshot:
		t.Backend, t.Reason, err = backend, "configured", s.snapshotTask(t)
	case BackendOverlay:
		t.Backend, t.Reason, err = backend, "configured", s.overlayTask(t, false)
	case BackendFuseOverlay:
		t.Backend, t.Reason, err = backend, "configured", s.overlayTask(t, true)
	case "", BackendAuto:
		err = s.autoTask(t)
	default:
		err = fmt.Errorf("unknown rootfs backend %q (want auto, btrfs-snapshot, overlay or fuse-overlay)", backend)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("new task %s: %w", taskDir, err), RemoveTaskRoot(taskDir))
	}
	if err := writeTaskRecord(t); err != nil {
		return nil, errors.Join(fmt.Errorf("new task %s: %w", taskDir, err), RemoveTaskRoot(taskDir))
	}
	s.log.Debug("task root ready", "root", t.Root, "backend", t.Backend, "reason", t.Reason)
	return t, nil
}

// autoTask tries the backends in order of cost and records why it settled.
func (s *Store) autoTask(t *Task) error {
	var why string
	if s.driver == DriverBtrfs {
		err := s.snapshotTask(t)
		if err == nil {
			t.Backend, t.Reason = BackendBtrfsSnapshot, "store driver is btrfs: snapshot of the image's top layer"
			return nil
		}
		why = fmt.Sprintf("btrfs snapshot failed (%v); ", err)
		_ = RemoveTaskRoot(t.Dir)
	} else {
		why = fmt.Sprintf("store driver is %s, not btrfs; ", s.driver)
	}
	err := s.overlayTask(t, false)
	if err == nil {
		t.Backend, t.Reason = BackendOverlay, why+"kernel overlay mounted"
		return nil
	}
	why += fmt.Sprintf("kernel overlay failed (%v); ", err)
	_ = RemoveTaskRoot(t.Dir)
	if err := s.overlayTask(t, true); err != nil {
		return fmt.Errorf("%sfuse-overlayfs failed: %w (install fuse-overlayfs, or put the state directory on btrfs)", why, err)
	}
	t.Backend, t.Reason = BackendFuseOverlay, why+"fuse-overlayfs mounted"
	return nil
}

// snapshotTask snapshots the top layer's subvolume: with the btrfs driver
// each layer subvolume holds the whole tree up to that layer.
func (s *Store) snapshotTask(t *Task) error {
	if s.driver != DriverBtrfs {
		return fmt.Errorf("btrfs-snapshot needs the btrfs storage driver, the store uses %s (put the state directory on btrfs, or use --rootfs-backend overlay)", s.driver)
	}
	src := filepath.Join(s.root, "btrfs", "subvolumes", t.Image.TopLayer)
	if !isSubvolume(src) {
		return fmt.Errorf("layer %s: %s is not a btrfs subvolume", t.Image.TopLayer, src)
	}
	return snapshot(src, t.Root)
}

// Remove tears the task root down: unmount or delete the snapshot, then
// remove the upper and work directories.
func (t *Task) Remove() error { return RemoveTaskRoot(t.Dir) }

// RemoveTaskRoot removes the root filesystem of the task in taskDir whatever
// state it was left in (mounted or not, snapshot or plain tree), so gc can
// clean up after a crashed run. taskDir itself goes too when it ends up
// empty; other files (launch plan, logs) are the caller's.
func RemoveTaskRoot(taskDir string) error {
	root := filepath.Join(taskDir, taskRootDir)
	var errs []error
	if err := unmountTaskRoot(root); err != nil {
		errs = append(errs, err)
	} else if isSubvolume(root) {
		if err := deleteSubvolume(root); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		for _, d := range []string{taskRootDir, taskUpperDir, taskWorkDir, taskLowersDir, taskRecord} {
			if err := removeTree(filepath.Join(taskDir, d)); err != nil {
				errs = append(errs, err)
			}
		}
		_ = os.Remove(taskDir) // only succeeds when empty
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove task root %s: %w", taskDir, err)
	}
	return nil
}

// TaskRecord is what NewTask leaves in taskDir/rootfs.json, so gc can tell
// which images live tasks still need (overlay roots read the image's layers).
type TaskRecord struct {
	Backend string `json:"backend"`
	Digest  string `json:"digest"`
	ImageID string `json:"image_id"`
	Ref     string `json:"ref"`
	Rootfs  string `json:"rootfs,omitempty"` // the --rootfs directory of NewDirTask
}

func writeTaskRecord(t *Task) error {
	r := TaskRecord{Backend: t.Backend, Rootfs: t.Lower}
	if t.Image != nil {
		r.Digest, r.ImageID, r.Ref = t.Image.Digest, t.Image.ID, t.Image.Ref
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(t.Dir, taskRecord), b, 0o600)
}

// ReadTaskRecord reads the record NewTask left in taskDir.
func ReadTaskRecord(taskDir string) (*TaskRecord, error) {
	b, err := os.ReadFile(filepath.Join(taskDir, taskRecord))
	if err != nil {
		return nil, fmt.Errorf("read task record: %w", err)
	}
	var r TaskRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read task record %s: %w", taskDir, err)
	}
	return &r, nil
}

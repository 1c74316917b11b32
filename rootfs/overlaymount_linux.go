package rootfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// overlayLayers are the directories of one overlay: lowers top first, and
// the upper and work directories the task writes to.
type overlayLayers struct {
	lowers       []string
	upper, work  string
	userxattr    bool // unprivileged overlay: metadata in user.* xattrs
	volatileSync bool // volatile: the overlay need not pass syncs on
	// selfContained: redirect_dir=nofollow (no redirect made or followed; "off" means follow), metacopy and index off, so that the
	// upper layer alone says what changed (a review run's layer is read
	// back by package review, which interprets no redirect or metacopy).
	selfContained bool
}

// selfContainedOptions are the overlay options selfContained sets.
var selfContainedOptions = [][2]string{{"redirect_dir", "nofollow"}, {"metacopy", "off"}, {"index", "off"}}

// mountKernelOverlay mounts l at target with the new mount API, handing
// the kernel every layer as an open directory (fsconfig FSCONFIG_SET_FD,
// Linux 6.13): no path is ever written into an option string, so a state
// directory or a --rootfs path with ',' ':' '=' '\' or a newline is just a
// path (with mount(2)'s data string, "lowerdir=/a,b" would have become two
// options). Kernels without fd layers get the legacy data string, for
// paths it can carry.
func mountKernelOverlay(l overlayLayers, target string) error {
	err := mountOverlayFDs(l, target)
	if !errors.Is(err, errNoFDLayers) {
		return err
	}
	return mountOverlayLegacy(l, target)
}

// errNoFDLayers: the kernel's overlay takes no layer as an fd (before 6.13)
// or has no fsopen (before 5.2).
var errNoFDLayers = errors.New("overlay takes no layer fds")

func mountOverlayFDs(l overlayLayers, target string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) {
		return errNoFDLayers
	}
	if err != nil {
		return os.NewSyscallError("fsopen overlay", err)
	}
	defer unix.Close(fsfd)
	for _, lower := range l.lowers {
		if err := setLayerFD(fsfd, "lowerdir+", lower); err != nil {
			return err
		}
	}
	if err := setLayerFD(fsfd, "upperdir", l.upper); err != nil {
		return err
	}
	if err := setLayerFD(fsfd, "workdir", l.work); err != nil {
		return err
	}
	if l.userxattr {
		if err := unix.FsconfigSetFlag(fsfd, "userxattr"); err != nil {
			return fsError(fsfd, "fsconfig userxattr", err)
		}
	}
	if l.selfContained {
		for _, o := range selfContainedOptions {
			if err := unix.FsconfigSetString(fsfd, o[0], o[1]); err != nil {
				return fsError(fsfd, "fsconfig "+o[0]+"="+o[1], err)
			}
		}
	}
	// volatile came with 5.10; a kernel that refuses it mounts without.
	if l.volatileSync {
		_ = unix.FsconfigSetFlag(fsfd, "volatile")
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fsError(fsfd, "fsconfig create overlay", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fsError(fsfd, "fsmount overlay", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "move_mount overlay", Path: target, Err: err}
	}
	return nil
}

// setLayerFD hands the kernel dir, opened here, as the overlay's key.
func setLayerFD(fsfd int, key, dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open overlay " + key, Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.FsconfigSetFd(fsfd, key, fd); err != nil {
		if errors.Is(err, unix.EINVAL) && key == "lowerdir+" {
			// Before 6.13 layers are strings only ("lowerdir+" came
			// with 6.8), or the key is unknown.
			return errNoFDLayers
		}
		return fsError(fsfd, fmt.Sprintf("fsconfig %s %s", key, dir), err)
	}
	return nil
}

// fsError adds what the filesystem logged on fsfd (the reason behind an
// EINVAL: "overlayfs: workdir and upperdir must be separate subtrees").
func fsError(fsfd int, op string, err error) error {
	var msgs []string
	buf := make([]byte, 512)
	for range 8 {
		n, rerr := unix.Read(fsfd, buf)
		if rerr != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s: %w (%s)", op, err, strings.Join(msgs, "; "))
	}
	return fmt.Errorf("%s: %w", op, err)
}

// legacyUnsafe are the bytes mount(2)'s overlay data string cannot carry in
// a path: ',' separates options, ':' lower layers, '\' escapes.
const legacyUnsafe = ",:\\"

// mountOverlayLegacy mounts with mount(2)'s data string on kernels before
// 6.13, refusing a path the string would misread.
func mountOverlayLegacy(l overlayLayers, target string) error {
	for _, p := range append(append([]string{}, l.lowers...), l.upper, l.work) {
		if strings.ContainsAny(p, legacyUnsafe) {
			return fmt.Errorf("overlay layer %q holds ',', ':' or '\\', which this kernel's overlay options cannot carry (Linux 6.13 or later takes any path): move the state directory or --rootfs to a plain path", p)
		}
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(l.lowers, ":"), l.upper, l.work)
	if l.userxattr {
		data += ",userxattr"
	}
	if l.selfContained {
		for _, o := range selfContainedOptions {
			data += "," + o[0] + "=" + o[1]
		}
	}
	if len(data) >= os.Getpagesize() {
		return fmt.Errorf("overlay options for %d layers exceed a page (%d bytes)", len(l.lowers), len(data))
	}
	if v := data + ",volatile"; l.volatileSync && len(v) < os.Getpagesize() {
		if err := unix.Mount("overlay", target, "overlay", 0, v); err == nil {
			return nil
		}
	}
	if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
		return &os.PathError{Op: "mount -t overlay -o " + data, Path: target, Err: err}
	}
	return nil
}

// mountFuseOverlay mounts l at target with fuse-overlayfs, whose -o string
// holds only names loftd made: it runs in dir (the task directory), where
// lowers/0, lowers/1, ... link to the lower layers and upper, work and
// target are plain entries, so no byte of a user's path enters its options.
func mountFuseOverlay(l overlayLayers, dir, target string) error {
	bin, err := exec.LookPath("fuse-overlayfs")
	if err != nil {
		return fmt.Errorf("fuse-overlayfs not found (apt-get install fuse-overlayfs)")
	}
	if err := fuseOverlayCarries(append(append([]string{}, l.lowers...), dir)); err != nil {
		return err
	}
	links := filepath.Join(dir, taskLowersDir)
	if err := removeTree(links); err != nil {
		return err
	}
	if err := os.Mkdir(links, 0o700); err != nil {
		return fmt.Errorf("fuse-overlayfs lower links: %w", err)
	}
	names := make([]string, len(l.lowers))
	for i, lower := range l.lowers {
		names[i] = taskLowersDir + "/" + strconv.Itoa(i)
		if err := os.Symlink(lower, filepath.Join(dir, names[i])); err != nil {
			return fmt.Errorf("fuse-overlayfs lower link: %w", err)
		}
	}
	rel := func(p string) (string, error) {
		if filepath.Dir(p) != filepath.Clean(dir) {
			return "", fmt.Errorf("fuse-overlayfs: %s is not in %s", p, dir)
		}
		return filepath.Base(p), nil
	}
	upper, err := rel(l.upper)
	if err != nil {
		return err
	}
	work, err := rel(l.work)
	if err != nil {
		return err
	}
	mnt, err := rel(target)
	if err != nil {
		return err
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(names, ":"), upper, work)
	cmd := exec.Command(bin, "-o", data, "./"+mnt)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("fuse-overlayfs -o %s %s (in %s): %w: %s", data, mnt, dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// fuseOverlayCarries refuses paths fuse-overlayfs would misread:
// it resolves each layer to its real path and splits that again at ':'
// ("cannot resolve path /tmp/b" for a layer under /tmp/b:c), whatever name
// it was given.
func fuseOverlayCarries(paths []string) error {
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return fmt.Errorf("fuse-overlayfs layer %s: %w", p, err)
		}
		if strings.Contains(real, ":") {
			return fmt.Errorf("fuse-overlayfs layer %q: its real path holds ':', which fuse-overlayfs splits layers at; use the kernel overlay (Linux 6.13 or later takes any path) or move the state directory or --rootfs to a path without ':'", real)
		}
	}
	return nil
}

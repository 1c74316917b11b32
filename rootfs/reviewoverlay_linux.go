package rootfs

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// MountReviewOverlay mounts a review run's view of the workspace at
// target: lower is the workspace, read-only to the overlay, and the
// guest's writes land in upper. The kernel overlay only (fuse-overlayfs
// keeps its metadata its own way), with redirect_dir, metacopy and index
// off so the upper layer is self-contained, and not volatile: the layer
// is the user's pending work and must survive a host crash. In the keep-id
// namespace it is mounted with userxattr; the result says which, because
// the layer's metadata namespace follows it.
func MountReviewOverlay(lower, upper, work, target string) (userXattrs bool, err error) {
	l := overlayLayers{lowers: []string{lower}, upper: upper, work: work, userxattr: InKeepID(), selfContained: true}
	if err := mountKernelOverlay(l, target); err != nil {
		return false, fmt.Errorf("mount the review overlay of %s: %w (a review run needs the kernel overlay over the workspace, with the state directory outside it)", lower, err)
	}
	return l.userxattr, nil
}

// UnmountReviewOverlay detaches a review overlay (EINVAL: not mounted).
func UnmountReviewOverlay(target string) error {
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount the review overlay %s: %w", target, err)
	}
	return nil
}

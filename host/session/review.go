package session

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/review"
	"github.com/loftd/loftd/rootfs"
)

// prepareReview decides what the guest's /workspace is: the workspace
// itself, or for a review run an overlay over it whose upper layer is kept
// in STATE/reviews/<task id>. The record is written, with the start the
// conflict check needs, before the overlay exists: the guest cannot write
// before it. The overlay is unmounted when the session ends; the layer
// stays, pending, for diff, apply and discard.
func (s *session) prepareReview() error {
	s.share = s.ws.Source
	if !s.opts.Review {
		return nil
	}
	rec := state.ReviewRecord{
		Workspace: s.ws.Source, Command: s.opts.Command, Started: time.Now().UTC(),
		Since: review.StartTime().UTC(), State: state.ReviewRunning, UserXattrs: rootfs.InKeepID(),
	}
	r, err := s.state.NewReview(s.task.ID, rec)
	if err != nil {
		return err
	}
	if err := matchWorkspaceRoot(r.Upper(), s.ws.Source); err != nil {
		return errors.Join(err, r.Remove())
	}
	rec.ID = r.ID
	userX, err := rootfs.MountReviewOverlay(s.ws.Source, r.Upper(), r.Work(), r.Merged())
	if err != nil {
		return errors.Join(err, r.Remove())
	}
	if userX != rec.UserXattrs {
		rec.UserXattrs = userX
		if err := r.Save(rec); err != nil {
			return errors.Join(err, rootfs.UnmountReviewOverlay(r.Merged()), r.Remove())
		}
	}
	s.share = r.Merged()
	s.io.Log.Debug("review run", "id", r.ID, "layer", r.Upper(), "userxattr", userX)
	s.undo = append(s.undo, func() error {
		err := rootfs.UnmountReviewOverlay(r.Merged())
		rec.State, rec.Ended = state.ReviewPending, time.Now().UTC()
		err = errors.Join(err, r.Save(rec))
		fmt.Fprintf(s.io.Stderr, "%s: review run %s kept the guest's changes to %s; see them with '%s diff %s', then '%s apply %s' or '%s discard %s'\n",
			s.io.Prog, r.ID, s.ws.Source, s.io.Prog, r.ID, s.io.Prog, r.ID, s.io.Prog, r.ID)
		return err
	})
	return nil
}

// matchWorkspaceRoot gives the upper layer's root the workspace's owner
// and mode: an overlay's root shows its upper directory's, and the guest
// user must own /workspace as it would without review.
func matchWorkspaceRoot(upper, ws string) error {
	fi, err := os.Stat(ws)
	if err != nil {
		return fmt.Errorf("review layer: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("review layer: no owner for %s", ws)
	}
	if err := os.Lchown(upper, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("review layer: %w", err)
	}
	if err := os.Chmod(upper, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("review layer: %w", err)
	}
	return nil
}

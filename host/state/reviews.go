package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/loftd/loftd/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// A review run (--review) keeps the guest's writes to the workspace in an
// overlay upper layer under STATE/reviews/<id>/, where <id> is the run's
// task id: the layer outlives the task and the VM, until the user applies
// or discards it and gc collects the record.

// ReviewState is where a review run stands.
type ReviewState string

const (
	ReviewRunning   ReviewState = "running"   // its VM may still write the layer
	ReviewPending   ReviewState = "pending"   // ended; changes to diff, apply or discard
	ReviewApplied   ReviewState = "applied"   // applied in full (the layer stays until gc)
	ReviewDiscarded ReviewState = "discarded" // the layer is gone; the record waits for gc
)

// ReviewRecord is review.json: what `reviews` lists and what diff and
// apply need to read the layer.
type ReviewRecord struct {
	ID        string    `json:"id"`
	Workspace string    `json:"workspace"`
	Command   []string  `json:"command"`
	Started   time.Time `json:"started"`
	// Since is the coarse-clock start the conflict check compares
	// workspace ctimes with (review.StartTime).
	Since time.Time   `json:"since"`
	Ended time.Time   `json:"ended,omitzero"`
	State ReviewState `json:"state"`
	// UserXattrs: the overlay was mounted in a user namespace
	// (userxattr), so its metadata is user.overlay.*, not trusted.
	UserXattrs bool `json:"user_xattrs"`
}

// Review is one review run's directory.
type Review struct {
	ID, Dir string
}

func (s State) Reviews() string { return filepath.Join(s.Dir, "reviews") }

func (r Review) Upper() string  { return filepath.Join(r.Dir, "upper") }
func (r Review) Work() string   { return filepath.Join(r.Dir, "work") }
func (r Review) Merged() string { return filepath.Join(r.Dir, "merged") }
func (r Review) record() string { return filepath.Join(r.Dir, "review.json") }

// NewReview makes the directory of the review run of task id, with its
// empty layers, and writes rec.
func (s State) NewReview(id string, rec ReviewRecord) (Review, error) {
	r := Review{ID: id, Dir: filepath.Join(s.Reviews(), id)}
	if err := os.MkdirAll(s.Reviews(), 0o700); err != nil {
		return r, fmt.Errorf("create review directory: %w", err)
	}
	if err := os.Mkdir(r.Dir, 0o700); err != nil {
		return r, fmt.Errorf("create review directory: %w", err)
	}
	for _, d := range []string{r.Upper(), r.Work(), r.Merged()} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return r, fmt.Errorf("create review directory: %w", err)
		}
	}
	rec.ID = id
	return r, r.Save(rec)
}

// Save writes rec as the run's record.
func (r Review) Save(rec ReviewRecord) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(r.record(), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save review %s: %w", r.ID, err)
	}
	return nil
}

// ErrNoReview: no review run has that id (or the workspace has none).
var ErrNoReview = errors.New("no such review run")

// Review opens the review run id (a unique prefix of one will do).
func (s State) Review(id string) (Review, ReviewRecord, error) {
	recs, err := s.ListReviews()
	if err != nil {
		return Review{}, ReviewRecord{}, err
	}
	var match []ReviewRecord
	for _, rec := range recs {
		if rec.ID == id {
			match = []ReviewRecord{rec}
			break
		}
		if strings.HasPrefix(rec.ID, id) {
			match = append(match, rec)
		}
	}
	switch {
	case id == "" || len(match) == 0:
		return Review{}, ReviewRecord{}, fmt.Errorf("review %q: %w (list them with: loftd reviews)", id, ErrNoReview)
	case len(match) > 1:
		return Review{}, ReviewRecord{}, fmt.Errorf("review %q: names %d runs; give more of the id", id, len(match))
	}
	return Review{ID: match[0].ID, Dir: filepath.Join(s.Reviews(), match[0].ID)}, match[0], nil
}

// ListReviews reads every review record, oldest first. A run whose task
// has died while its record still says running (a killed loftd) is
// pending: its layer is complete.
func (s State) ListReviews() ([]ReviewRecord, error) {
	ents, err := os.ReadDir(s.Reviews())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list reviews: %w", err)
	}
	var out []ReviewRecord
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(s.Reviews(), e.Name(), "review.json"))
		if err != nil {
			continue // being made, or half removed
		}
		var rec ReviewRecord
		if err := json.Unmarshal(data, &rec); err != nil || rec.ID != e.Name() {
			continue
		}
		if rec.State == ReviewRunning && !s.taskAlive(rec.ID) {
			rec.State = ReviewPending
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// taskAlive reports whether a loftd holds the lock of task id.
func (s State) taskAlive(id string) bool {
	dir := filepath.Join(s.Tasks(), id)
	f, err := lockDir(dir, unix.LOCK_SH|unix.LOCK_NB)
	if err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	f.Close()
	return false
}

// DropLayer unmounts the run's overlay if a crashed run left it mounted
// and removes its layers, keeping the record (discard).
func (r Review) DropLayer() error {
	if err := unix.Unmount(r.Merged(), unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount review %s: %w", r.ID, err)
	}
	for _, d := range []string{r.Upper(), r.Work(), r.Merged()} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove review %s: %w", r.ID, err)
		}
	}
	return nil
}

// Remove drops the run's layers and its record.
func (r Review) Remove() error {
	if err := r.DropLayer(); err != nil {
		return err
	}
	return os.RemoveAll(r.Dir)
}

// CollectReviews removes the discarded and applied runs, and the pending
// ones that ended before cutoff (a zero cutoff keeps every pending one).
func (s State) CollectReviews(cutoff time.Time) ([]ReviewRecord, error) {
	recs, err := s.ListReviews()
	if err != nil {
		return nil, err
	}
	var removed []ReviewRecord
	var errs []error
	for _, rec := range recs {
		end := rec.Ended
		if end.IsZero() {
			end = rec.Started // a run killed before it could record its end
		}
		old := rec.State == ReviewPending && !cutoff.IsZero() && end.Before(cutoff)
		if rec.State != ReviewDiscarded && rec.State != ReviewApplied && !old {
			continue
		}
		if err := (Review{ID: rec.ID, Dir: filepath.Join(s.Reviews(), rec.ID)}).Remove(); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, rec)
	}
	return removed, errors.Join(errs...)
}

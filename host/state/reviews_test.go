package state_test

import (
	"errors"
	"os"
	"testing"
	"time"

	. "github.com/loftd/loftd/host/state"
)

// TestReviewLifecycle: a run is running while its task is claimed, pending
// once the task is gone; ids resolve by unique prefix; gc removes the
// discarded and applied runs always and pending ones only past the cutoff.
func TestReviewLifecycle(t *testing.T) {
	st := State{Dir: t.TempDir()}
	task, err := st.NewTask()
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	r, err := st.NewReview(task.ID, ReviewRecord{Workspace: "/w", State: ReviewRunning, Started: old})
	if err != nil {
		t.Fatal(err)
	}
	states := func() []ReviewState {
		recs, err := st.ListReviews()
		if err != nil {
			t.Fatal(err)
		}
		var s []ReviewState
		for _, rec := range recs {
			s = append(s, rec.State)
		}
		return s
	}
	if got := states(); len(got) != 1 || got[0] != ReviewRunning {
		t.Errorf("states with the task claimed = %v, want [running]", got)
	}
	task.Release()
	if got := states(); len(got) != 1 || got[0] != ReviewPending {
		t.Errorf("states after the task ended = %v, want [pending] (a killed run's layer is complete)", got)
	}
	if _, _, err := st.Review(task.ID[:10]); err != nil {
		t.Errorf("Review(prefix) = %v", err)
	}
	if _, _, err := st.Review("nope"); !errors.Is(err, ErrNoReview) {
		t.Errorf("Review(nope) = %v, want ErrNoReview", err)
	}
	for _, d := range []string{r.Upper(), r.Work(), r.Merged()} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("layer directory %s: %v", d, err)
		}
	}
	// Two more: one applied, one recent and pending.
	applied, _ := st.NewReview("20990101T000000-00000001", ReviewRecord{State: ReviewApplied, Started: old, Ended: old})
	_, _ = st.NewReview("20990101T000000-00000002", ReviewRecord{State: ReviewPending, Started: time.Now(), Ended: time.Now()})
	removed, err := st.CollectReviews(time.Time{})
	if err != nil || len(removed) != 1 || removed[0].ID != applied.ID {
		t.Errorf("CollectReviews(no cutoff) = %v, %v; want only the applied run", removed, err)
	}
	removed, err = st.CollectReviews(time.Now().Add(-24 * time.Hour))
	if err != nil || len(removed) != 1 || removed[0].ID != task.ID {
		t.Errorf("CollectReviews(a day) = %v, %v; want only the old pending run %s", removed, err, task.ID)
	}
	if _, err := os.Stat(r.Dir); !os.IsNotExist(err) {
		t.Errorf("collected review directory: %v, want it gone", err)
	}
}

package helper

import (
	"encoding/json"
	"os"
	"testing"
)

// TestHelperParentGone: a helper whose parent is no longer the loftd that
// started it (--parent-pid) fails at its start, also when it was
// reparented to a subreaper rather than to init.
func TestHelperParentGone(t *testing.T) {
	tests := []struct {
		name      string
		parent    int
		wantPhase string
	}{
		// Past the check, the empty task directory fails the next phase.
		{"parent still there", os.Getppid(), "read launch plan"},
		{"run by hand", 0, "read launch plan"},
		// Not our parent: as for a helper adopted by a subreaper.
		{"parent gone", os.Getpid(), "start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			h := &Helper{TaskDir: t.TempDir(), ErrFile: w, Parent: tt.parent}
			if status := h.Run(); status != 125 {
				t.Errorf("Run() = %d, want 125", status)
			}
			var he Error
			if err := json.NewDecoder(r).Decode(&he); err != nil {
				t.Fatalf("decode Error: %v", err)
			}
			if he.Phase != tt.wantPhase {
				t.Errorf("Error = %+v, want phase %q", he, tt.wantPhase)
			}
		})
	}
}

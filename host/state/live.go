package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/loftd/loftd/internal/atomicfile"
)

// LiveVM is the record of a workspace's running VM (issue 19), which a
// second loftd for the same workspace reads to join it instead of failing
// "in use": where its task (and so its sockets) is, who owns it, and how
// it was started. The owner writes it once the helper runs and removes it
// when the VM ended; a record whose owner is gone is stale (its sockets
// are gone or refuse).
type LiveVM struct {
	Workspace string    `json:"workspace"` // the project directory
	Task      string    `json:"task"`      // the task directory (sockets, logs)
	PID       int       `json:"pid"`       // the owning loftd
	Started   time.Time `json:"started"`
	Detached  bool      `json:"detached"` // started with -d: outlives its sessions
	Hold      bool      `json:"hold"`     // the main session is held for attach
	Command   []string  `json:"command,omitempty"`
}

// LiveFile is the workspace's LiveVM record.
func (w Workspace) LiveFile() string { return filepath.Join(w.Dir, "live.json") }

// WriteLive records v as the workspace's running VM.
func (w Workspace) WriteLive(v LiveVM) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(w.LiveFile(), data, 0o600); err != nil {
		return fmt.Errorf("record the running VM: %w", err)
	}
	return nil
}

// maxLiveFile bounds the record read.
const maxLiveFile = 64 << 10

// ReadLive returns the workspace's record, or nil when there is none.
func (w Workspace) ReadLive() (*LiveVM, error) {
	return readLive(w.LiveFile())
}

func readLive(path string) (*LiveVM, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	var v LiveVM
	if err := json.NewDecoder(io.LimitReader(f, maxLiveFile)).Decode(&v); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &v, nil
}

// RemoveLive removes the record if it still names task (a newer VM's
// record stays).
func (w Workspace) RemoveLive(task string) error {
	v, err := w.ReadLive()
	if err != nil || v == nil || v.Task != task {
		return err
	}
	if err := os.Remove(w.LiveFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the running VM's record: %w", err)
	}
	return nil
}

// ListLive returns every workspace's record (running or stale).
func (s State) ListLive() ([]LiveVM, error) {
	files, err := filepath.Glob(filepath.Join(s.Workspaces(), "*", "live.json"))
	if err != nil {
		return nil, err
	}
	var out []LiveVM
	for _, f := range files {
		v, err := readLive(f)
		if err != nil || v == nil {
			continue
		}
		out = append(out, *v)
	}
	return out, nil
}

package state

import (
	"os"
	"testing"
	"time"
)

// The record is read back as written, listed across workspaces, and
// removed only by the task it names (a newer VM's record stays).
func TestLiveRecord(t *testing.T) {
	st := State{Dir: t.TempDir()}
	ws := st.Workspace("/src/proj")
	if v, err := ws.ReadLive(); v != nil || err != nil {
		t.Fatalf("ReadLive with no record = %+v, %v; want nil, nil", v, err)
	}
	if err := os.MkdirAll(ws.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	rec := LiveVM{Workspace: ws.Source, Task: "/s/tasks/t2", PID: 42, Started: time.Unix(100, 0).UTC(), Detached: true, Hold: true}
	if err := ws.WriteLive(rec); err != nil {
		t.Fatal(err)
	}
	got, err := ws.ReadLive()
	if err != nil || got.Task != rec.Task || got.PID != 42 || !got.Detached || !got.Hold || !got.Started.Equal(rec.Started) {
		t.Errorf("ReadLive = %+v, %v; want %+v", got, err, rec)
	}
	if all, err := st.ListLive(); err != nil || len(all) != 1 {
		t.Errorf("ListLive = %+v, %v; want the one record", all, err)
	}
	if err := ws.RemoveLive("/s/tasks/t1"); err != nil {
		t.Fatal(err)
	}
	if v, _ := ws.ReadLive(); v == nil {
		t.Error("RemoveLive of another task removed the record")
	}
	if err := ws.RemoveLive("/s/tasks/t2"); err != nil {
		t.Fatal(err)
	}
	if v, _ := ws.ReadLive(); v != nil {
		t.Errorf("record left after RemoveLive of its task: %+v", v)
	}
	os.WriteFile(ws.LiveFile(), []byte("{not json"), 0o600)
	if _, err := ws.ReadLive(); err == nil {
		t.Error("ReadLive of a corrupt record: no error")
	}
}

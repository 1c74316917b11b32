package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMappedWritesReachHost: what the workload wrote through a shared
// mapping and never synced, in the workspace and in a -v volume, is in the
// host's files once loftd returns, now that the guest init ends the VM
// without sync(2) (guestinit/flush.go): FUSE writes a mapping's dirty pages
// back when it is unmapped, when its process exits or, for one still
// holding it when the workload ends, when the init kills it.
func TestMappedWritesReachHost(t *testing.T) {
	w := newWorld(t)
	build := exec.Command("go", "build", "-o", filepath.Join(w.root, "bin", "mmapwrite"), "./testdata/mmapwrite")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build mmapwrite: %v\n%s", err, out)
	}
	vol := t.TempDir()
	if err := os.Chown(vol, guestUID, guestUID); err != nil {
		t.Fatal(err)
	}
	data := strings.Repeat("mapped page data ", 1000) // 17000 bytes: five pages
	script := `mmapwrite /workspace/mapped "$1" && mmapwrite /data/mapped "$1" || exit 1
mmapwrite /workspace/held "$1" hold > /tmp/held &
while [ ! -s /tmp/held ]; do sleep 0.1; done`
	status, _, stderr := w.run("", "-v", vol+":/data", "--", "sh", "-c", script, "sh", data)
	if status != 0 {
		t.Fatalf("loftd -- mmapwrite: status %d\n%s", status, stderr)
	}
	for _, p := range []string{filepath.Join(w.workspace, "mapped"), filepath.Join(vol, "mapped"), filepath.Join(w.workspace, "held")} {
		got, err := os.ReadFile(p)
		if err != nil || string(got) != data {
			t.Errorf("host file %s after a mapped write in the guest: %d bytes, %v; want the %d bytes written", p, len(got), err, len(data))
		}
	}
}

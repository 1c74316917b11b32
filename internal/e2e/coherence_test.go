package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExecFromVirtiofs: programs whose pages the guest reads over virtiofs
// run as built, many times, with two vCPUs. virtiofsd writes a file's pages
// straight into guest memory; under TCG, QEMU never sees that write, so a
// page that once held other code could still run QEMU's stale translation
// of it: before the guest kernel zeroed the pages it allocates
// (init_on_alloc=1, which helper/qemu adds under TCG), 1-11 of every 240 runs of these two static
// Go programs died of SIGSEGV or SIGTRAP (never with copies in tmpfs, which
// the guest CPU writes). It was CI's intermittent guest SIGSEGV.
func TestExecFromVirtiofs(t *testing.T) {
	w := newWorld(t)
	hello := filepath.Join(w.workspace, "gohello")
	build := exec.Command("go", "build", "-o", hello, "./testdata/gohello")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build gohello: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bins.guestInit)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.workspace, "gi"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	// 200 runs: at the old rate the chance that none fails is below 2 %.
	script := `f=0; i=0
while [ $i -lt 100 ]; do
  ./gohello >/dev/null 2>&1; s=$?; [ $s = 0 ] || { f=$((f+1)); echo "gohello: status $s"; }
  ./gi version >/dev/null 2>&1; s=$?; [ $s = 0 ] || { f=$((f+1)); echo "gi version: status $s"; }
  i=$((i+1))
done
echo "FAILED $f"`
	status, out, stderr := w.run("", "--vmm", "qemu", "--cpus", "2", "--", "sh", "-c", script)
	if status != 0 || !strings.Contains(out, "FAILED 0\n") {
		t.Fatalf("200 runs of two Go programs from the workspace, two vCPUs: status %d\n%s\n%s", status, out, stderr)
	}
}

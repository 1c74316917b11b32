package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// resizeConfig makes the workspace's containers disk 2 GiB (and the nix
// disk small) through the config file in dir/loftd/loftd.toml.
func resizeConfig(t *testing.T, configHome string) {
	t.Helper()
	dir := filepath.Join(configHome, "loftd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := "[disks]\ncontainers_size = \"2G\"\nnix_size = \"256M\"\n"
	if err := os.WriteFile(filepath.Join(dir, "loftd.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fsTotalBytes is the filesystem size the disk's superblock records, as
// btrfs-progs reads it on the host (no mount).
func fsTotalBytes(t *testing.T, disk string) int64 {
	t.Helper()
	bin := testenv.RequireCommand(t, "btrfs", "btrfs-progs")
	out, err := exec.Command(bin, "inspect-internal", "dump-super", disk).CombinedOutput()
	if err != nil {
		t.Fatalf("btrfs inspect-internal dump-super %s: %v\n%s", disk, err, out)
	}
	m := regexp.MustCompile(`(?m)^total_bytes\s+(\d+)$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("dump-super %s has no total_bytes:\n%s", disk, out)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

func findDisk(t *testing.T, stateDir, name string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(stateDir, "loftd", "workspaces", "*", name))
	if len(m) != 1 {
		t.Fatalf("want one %s under %s, found %q", name, stateDir, m)
	}
	return m[0]
}

// resize runs loftd resize on the world's workspace.
func (w *world) resize(args ...string) (int, string) {
	w.t.Helper()
	c := exec.Command(bins.loftd, append([]string{"resize", "--workspace", w.workspace, "--vmm", "qemu"}, args...)...)
	c.Env = append(os.Environ(), "XDG_STATE_HOME="+w.state, "XDG_CONFIG_HOME="+filepath.Join(w.state, "config"))
	out, err := c.CombinedOutput()
	if err != nil && c.ProcessState == nil {
		w.t.Fatalf("loftd resize %q: %v", args, err)
	}
	return c.ProcessState.ExitCode(), string(out)
}

const gib = int64(1) << 30

// TestResize grows a 2 GiB containers disk to 3 GiB: the file on the host,
// then the filesystem in a maintenance VM (the host never mounts it); the
// superblock, read on the host by btrfs-progs, records the new size. A
// shrink and a resize while a session holds the workspace are refused.
func TestResize(t *testing.T) {
	w := newWorld(t)
	resizeConfig(t, filepath.Join(w.state, "config"))
	if status, _, stderr := w.run("", "--vmm", "qemu", "--", "true"); status != 0 {
		t.Fatalf("first run (makes the disks): status %d\n%s", status, stderr)
	}
	disk := findDisk(t, w.state, "containers.raw")
	if got := fsTotalBytes(t, disk); got != 2*gib {
		t.Fatalf("containers filesystem before resize: %d bytes, want %d", got, 2*gib)
	}
	if status, out := w.resize("--target", "containers", "--size", "3G"); status != 0 {
		t.Fatalf("resize --size 3G: status %d\n%s", status, out)
	}
	if got := fsTotalBytes(t, disk); got != 3*gib {
		t.Errorf("containers filesystem after resize to 3G: %d bytes, want %d", got, 3*gib)
	}
	if status, out := w.resize("--target", "containers", "--size", "2G"); status == 0 || !strings.Contains(out, "cannot shrink") {
		t.Errorf("resize --size 2G of a 3 GiB disk: status %d, output %q; want a refusal", status, out)
	}
	if got := fsTotalBytes(t, disk); got != 3*gib {
		t.Errorf("containers filesystem after a refused shrink: %d bytes, want %d", got, 3*gib)
	}
	// The session still works on the grown disk.
	if status, _, stderr := w.run("", "--vmm", "qemu", "--", "true"); status != 0 {
		t.Errorf("session after resize: status %d\n%s", status, stderr)
	}

	pid, wait := w.startLong("--vmm", "qemu")
	status, out := w.resize("--target", "containers", "--size", "4G")
	if want := fmt.Sprintf("pid %d", pid); status == 0 || !strings.Contains(out, want) {
		t.Errorf("resize while a session runs: status %d, output %q; want a refusal naming %q", status, out, want)
	}
	if fi, err := os.Stat(disk); err != nil || fi.Size() != 3*gib {
		t.Errorf("disk after a refused resize: %v, %v; want 3 GiB untouched", fi, err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wait()
}

// TestResizeRootless is the same grow as the unprivileged user: the
// maintenance VM runs in the user's keep-id namespace.
func TestResizeRootless(t *testing.T) {
	w := newRootlessWorld(t)
	resizeConfig(t, filepath.Join(w.home, ".config"))
	for _, p := range []string{".config", ".config/loftd", ".config/loftd/loftd.toml"} {
		if err := os.Chown(filepath.Join(w.home, p), w.uid, w.gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := w.cmd("--", "sh", "-c", ":").CombinedOutput(); err != nil {
		t.Fatalf("first run (makes the disks): %v\n%s", err, out)
	}
	disk := findDisk(t, filepath.Join(w.home, ".local", "state"), "containers.raw")
	c := w.cmd()
	c.Args = []string{c.Args[0], "resize", "--vmm", "qemu", "--workspace", w.ws, "--target", "containers", "--size", "3G"}
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("rootless resize --size 3G: %v\n%s", err, out)
	}
	if got := fsTotalBytes(t, disk); got != 3*gib {
		t.Errorf("containers filesystem after rootless resize to 3G: %d bytes, want %d", got, 3*gib)
	}
}

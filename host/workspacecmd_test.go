package host

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/disks"
	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/internal/testenv"
)

// cli runs the CLI in-process against a private HOME (so a private state
// directory) and returns the status and both streams.
type cli struct {
	t    *testing.T
	home string
}

func newCLI(t *testing.T) *cli { return &cli{t: t, home: t.TempDir()} }

func (c *cli) run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	e := &env{IO: session.IO{Prog: "loftd", Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string {
			if k == "HOME" {
				return c.home
			}
			return ""
		}}}
	e.Log = session.NewLogger(&errb, false)
	return e.main(args), out.String(), errb.String()
}

func (c *cli) workspace(src string) state.Workspace {
	return state.State{Dir: filepath.Join(c.home, ".local", "state", "loftd")}.Workspace(src)
}

// fileSum hashes the head of a disk (superblock included: a reformat or
// a reset changes it) and its size; disks are too big to read whole.
func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, 4<<20)); err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	fmt.Fprint(h, fi.Size())
	return [32]byte(h.Sum(nil))
}

func makeDisk(t *testing.T, path, label string, size int64) {
	t.Helper()
	testenv.RequireCommand(t, "mkfs.btrfs", "btrfs-progs")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := disks.Create(path, label, size); err != nil {
		t.Fatal(err)
	}
}

func TestResetNixNeedsForce(t *testing.T) {
	c, src := newCLI(t), t.TempDir()
	ws := c.workspace(src)
	makeDisk(t, ws.NixDisk(), contract.NixLabel, disks.MinSize)
	if err := os.WriteFile(ws.NixDisk()+".marker", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, ws.NixDisk())
	status, _, stderr := c.run("reset-nix", "--workspace", src)
	if status != 2 || !strings.Contains(stderr, "--force") || !strings.Contains(stderr, "snapshot save --target nix") {
		t.Errorf("reset-nix without --force: status %d, stderr %q; want 2, a hint to --force and the snapshot command", status, stderr)
	}
	if fileSum(t, ws.NixDisk()) != before {
		t.Errorf("reset-nix without --force changed the nix disk")
	}
	status, _, stderr = c.run("reset-nix", "--force", "--workspace", src)
	if status != 0 || fileSum(t, ws.NixDisk()) == before {
		t.Errorf("reset-nix --force: status %d (stderr %q), disk changed: %v; want a fresh disk", status, stderr, fileSum(t, ws.NixDisk()) != before)
	}
	if err := disks.Validate(ws.NixDisk(), disks.DefaultSize); err != nil {
		t.Errorf("disk after reset-nix --force: %v", err)
	}
}

func TestResetNixRefusesNonDisk(t *testing.T) {
	c, src := newCLI(t), t.TempDir()
	ws := c.workspace(src)
	if err := os.MkdirAll(ws.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", ws.NixDisk()); err != nil {
		t.Fatal(err)
	}
	status, _, stderr := c.run("reset-nix", "--force", "--workspace", src)
	if status == 0 || !strings.Contains(stderr, "not a regular file") {
		t.Errorf("reset-nix --force over a symlink: status %d, stderr %q; want a refusal", status, stderr)
	}
	if target, err := os.Readlink(ws.NixDisk()); err != nil || target != "/etc/hostname" {
		t.Errorf("symlink changed: %q, %v", target, err)
	}
}

func TestResize(t *testing.T) {
	testenv.RequireRoot(t)
	c, src := newCLI(t), t.TempDir()
	ws := c.workspace(src)
	status, _, stderr := c.run("resize", "--target", "nix", "--size", "1G", "--workspace", src)
	if status == 0 || !strings.Contains(stderr, "has no nix disk yet") {
		t.Errorf("resize before the first run: status %d, stderr %q", status, stderr)
	}
	makeDisk(t, ws.NixDisk(), contract.NixLabel, 512*disks.MiB)
	for _, tt := range []struct{ size, want string }{{"256M", "cannot shrink"}, {"512M", "already has that size"}} {
		before := fileSum(t, ws.NixDisk())
		status, _, stderr := c.run("resize", "--target", "nix", "--size", tt.size, "--workspace", src)
		if status == 0 || !strings.Contains(stderr, tt.want) || fileSum(t, ws.NixDisk()) != before {
			t.Errorf("resize --size %s of a 512 MiB disk: status %d, stderr %q; want %q and no change", tt.size, status, stderr, tt.want)
		}
	}
}

// A maintenance VM that fails (here: it cannot even start, its guest init
// is missing) leaves the file grown and says the resize is retryable; the
// same command then runs the VM again instead of refusing the size the
// file already has, because the filesystem inside is still the old size.
// The growing itself needs a VM: internal/e2e TestResize.
func TestResizeFailureIsRetryable(t *testing.T) {
	c, src := newCLI(t), t.TempDir()
	ws := c.workspace(src)
	makeDisk(t, ws.NixDisk(), contract.NixLabel, 512*disks.MiB)
	missing := filepath.Join(t.TempDir(), "no-guest-init")
	for try := 1; try <= 2; try++ {
		status, _, stderr := c.run("resize", "--target", "nix", "--size", "1G", "--workspace", src, "--guest-init", missing, "--vmm", "qemu")
		if status != 1 || !strings.Contains(stderr, "was NOT grown") || !strings.Contains(stderr, "run the same command again") || !strings.Contains(stderr, missing) {
			t.Errorf("resize try %d with a failing maintenance VM: status %d, stderr %q; want 1, the reason and how to finish", try, status, stderr)
		}
		if fi, err := os.Stat(ws.NixDisk()); err != nil || fi.Size() != disks.GiB {
			t.Errorf("disk after try %d: %v, %v; want the file grown to 1 GiB", try, fi, err)
		}
	}
	if tasks, _ := os.ReadDir(filepath.Join(c.home, ".local", "state", "loftd", "tasks")); len(tasks) != 0 {
		t.Errorf("maintenance tasks left behind: %v", tasks)
	}
}

func TestWorkspaceLockNamesHolder(t *testing.T) {
	c, src := newCLI(t), t.TempDir()
	ws := c.workspace(src)
	makeDisk(t, ws.NixDisk(), contract.NixLabel, disks.MinSize)
	held, err := disks.Lock(ws.Lock(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// The holder is this process: the message must name its pid, not fall
	// back to "held by another process".
	want := fmt.Sprintf("is held by pid %d ", os.Getpid())
	status, _, stderr := c.run("reset-nix", "--force", "--workspace", src)
	if status == 0 || !strings.Contains(stderr, want) {
		t.Errorf("reset-nix while the workspace is locked: status %d, stderr %q; want a refusal naming the holder (%q)", status, stderr, want)
	}
}

// TestSnapshotCommand: the verbs, a name that is no file name, a missing
// disk, and save, list, restore and rm of a disk (a sparse copy here, or a
// reflink where the temporary directory has them).
func TestSnapshotCommand(t *testing.T) {
	c, src := newCLI(t), t.TempDir()
	ws := c.workspace(src)
	for _, tc := range []struct {
		args   []string
		status int
		stderr string
	}{
		{[]string{"snapshot"}, 2, "want save|list|restore|rm"},
		{[]string{"snapshot", "copy", "x"}, 2, `snapshot "copy"`},
		{[]string{"snapshot", "save", "--target", "home"}, 2, `--target "home"`},
		{[]string{"snapshot", "save", "--method", "tar"}, 2, `--method "tar"`},
		{[]string{"snapshot", "restore"}, 2, "name the snapshot"},
		{[]string{"snapshot", "save", "x", "--workspace", src}, 1, "has no nix disk yet"},
	} {
		if status, _, stderr := c.run(tc.args...); status != tc.status || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%q: status %d, stderr %q; want %d and %q", tc.args, status, stderr, tc.status, tc.stderr)
		}
	}
	makeDisk(t, ws.NixDisk(), contract.NixLabel, disks.MinSize)
	if status, _, stderr := c.run("snapshot", "save", "../x", "--workspace", src); status != 2 || !strings.Contains(stderr, "snapshot name") {
		t.Errorf("snapshot save ../x: %d %q; want a refusal of the name", status, stderr)
	}
	before := fileSum(t, ws.NixDisk())
	// --method file: auto would take an in-disk snapshot (a VM) where the
	// temporary directory has no reflinks.
	if status, out, stderr := c.run("snapshot", "save", "s1", "--method", "file", "--workspace", src); status != 0 || !strings.HasPrefix(out, "saved nix snapshot s1 (") {
		t.Fatalf("snapshot save s1: %d %q %q", status, out, stderr)
	}
	if err := os.WriteFile(ws.NixDisk(), []byte("changed"), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, _, stderr := c.run("snapshot", "restore", "s1", "--workspace", src); status != 0 || fileSum(t, ws.NixDisk()) != before {
		t.Errorf("snapshot restore s1: %d %q; disk restored %v", status, stderr, fileSum(t, ws.NixDisk()) == before)
	}
	if _, out, _ := c.run("snapshot", "list", "--format", "json", "--workspace", src); !strings.Contains(out, `"name": "s1"`) {
		t.Errorf("snapshot list --format json = %s, want s1", out)
	}
	if status, _, stderr := c.run("snapshot", "rm", "s1", "--workspace", src); status != 0 {
		t.Errorf("snapshot rm s1: %d %q", status, stderr)
	}
	if status, _, stderr := c.run("snapshot", "restore", "s1", "--workspace", src); status != 1 || !strings.Contains(stderr, "no such snapshot") {
		t.Errorf("snapshot restore of a removed one: %d %q", status, stderr)
	}
}

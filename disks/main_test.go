package disks

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// helperEnv, when set, turns the test binary into a helper process (see
// TestMain): the tests re-run themselves as a child so that a lock holder or
// a crashing builder is a different process with its own pid.
const helperEnv = "LOFTD_DISKS_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "hold-lock":
		holdLock(os.Args[2], os.Args[3] == "exclusive")
	case "crash-create":
		crashCreate(os.Args[2])
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%s\n", helperEnv, os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// holdLock takes the lock, says "locked" on stdout and holds it until its
// stdin is closed.
func holdLock(path string, exclusive bool) {
	l, err := Lock(path, exclusive)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	l.Close()
	os.Exit(0)
}

// crashCreate dies the way a killed process would, after mkfs finished and
// before the disk was renamed into place.
func crashCreate(path string) {
	publish = func(tmp, path string, replace bool) error {
		os.Exit(3)
		return nil
	}
	err := Create(path, "LOFTD_TEST", MinSize)
	fmt.Fprintf(os.Stderr, "Create returned %v instead of crashing\n", err)
	os.Exit(1)
}

// helper starts the test binary as a helper child with args.
func helper(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{name}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	cmd.Stderr = os.Stderr
	return cmd
}

// startLockHolder runs a child that holds the lock at path until the test
// ends; it returns the child's pid once the lock is taken.
func startLockHolder(t *testing.T, path string, exclusive bool) (pid int, release func()) {
	t.Helper()
	mode := "shared"
	if exclusive {
		mode = "exclusive"
	}
	cmd := helper(t, "hold-lock", path, mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	released := false
	release = func() {
		if !released {
			released = true
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("lock holder: %v", err)
			}
		}
	}
	t.Cleanup(release)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("lock holder said %q, %v; want \"locked\"", line, err)
	}
	return cmd.Process.Pid, release
}

// requireMkfs skips (fails in CI) without mkfs.btrfs.
func requireMkfs(t testing.TB) {
	t.Helper()
	if _, err := findMkfs(); err != nil {
		testenv.Missing(t, "%v", err)
	}
}

// newDisk creates a disk of size in a fresh directory.
func newDisk(t testing.TB, size int64) string {
	t.Helper()
	requireMkfs(t)
	p := filepath.Join(t.TempDir(), "nix.raw")
	if err := Create(p, "LOFTD_TEST", size); err != nil {
		t.Fatal(err)
	}
	return p
}

// fingerprint identifies a file's content and size, to prove it unchanged.
func fingerprint(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d bytes sha256:%s", n, hex.EncodeToString(h.Sum(nil)))
}

// leftovers lists the temporary disks left in dir.
func leftovers(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.Contains(e.Name(), tmpInfix) {
			names = append(names, e.Name())
		}
	}
	return names
}

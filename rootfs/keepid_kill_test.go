package rootfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
)

// sleeperEnv carries the work directory to the test binary re-run as the
// unprivileged user; its presence is what makes TestKeepIDSleeper run.
const sleeperEnv = "LOFTD_ROOTFS_TEST_SLEEPER"

// TestKeepIDChildDiesWithParent: SIGKILL of the process that entered the
// keep-id namespace must take the child inside with it (issue 7, defect 4).
// The child's unshare constructor calls setresuid(0), which clears a
// Pdeathsig set at fork, so only a death signal the child sets itself
// survives.
func TestKeepIDChildDiesWithParent(t *testing.T) {
	testenv.RequireRoot(t)
	u := testenv.RootlessUser(t)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	work, err := os.MkdirTemp("", "loftd-keepid-kill-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	bin := filepath.Join(work, "rootfs.test")
	if err := copyFile(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	if err := chownTree(work, uid, gid); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestKeepIDSleeper$", "-test.count=1")
	cmd.Dir = work
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + u.HomeDir, "USER=" + u.Username, sleeperEnv + "=" + work}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	// A file, not a pipe: a leaked child would hold a pipe open, and Wait
	// would wait for it.
	out, err := os.Create(filepath.Join(work, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	output := func() string { b, _ := os.ReadFile(out.Name()); return string(b) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pidFile := filepath.Join(work, "inner.pid")
	var inner int
	for deadline := time.Now().Add(time.Minute); inner == 0; time.Sleep(50 * time.Millisecond) {
		if data, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(data), "\n") {
			inner, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		if time.Now().After(deadline) {
			t.Fatalf("the keep-id child did not start within a minute:\n%s", output())
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if alive := waitGone(inner, "TestKeepIDSleeper", 10*time.Second); alive {
		syscall.Kill(inner, syscall.SIGKILL)
		t.Fatalf("keep-id child (pid %d) still runs 10 s after its parent was SIGKILLed\n%s", inner, output())
	}
}

// waitGone polls until pid no longer runs a command line holding mark;
// it reports whether it still does at the deadline.
func waitGone(pid int, mark string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		stat, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		zombie := strings.Contains(string(stat), ") Z ")
		if err != nil || zombie || !strings.Contains(string(cmdline), mark) {
			return false
		}
		if time.Now().After(deadline) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKeepIDSleeper is the body of TestKeepIDChildDiesWithParent, run as the
// unprivileged user: outside, it enters the namespace and waits for the
// child; inside, it writes its pid and sleeps until killed.
func TestKeepIDSleeper(t *testing.T) {
	work := os.Getenv(sleeperEnv)
	if work == "" {
		t.Skip("run by TestKeepIDChildDiesWithParent as the unprivileged user")
	}
	opts := EnterOptions{Dirs: []string{filepath.Join(work, "state")}}
	if !InKeepID() {
		k, err := CurrentKeepID()
		if err != nil {
			t.Fatalf("CurrentKeepID() = %v", err)
		}
		code, err := RunKeepID(k, os.Args, opts)
		t.Fatalf("RunKeepID returned %d, %v before it was killed", code, err)
	}
	if in, err := EnterKeepID(opts); err != nil || !in {
		t.Fatalf("EnterKeepID() in the child = %v, %v, want true, nil", in, err)
	}
	if err := os.WriteFile(filepath.Join(work, "inner.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Minute)
}

package child

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
	"golang.org/x/sys/unix"
)

// The test binary runs again as a parent or a grandchild (roleEnv), as
// tailscale's privilege-drop tests do: what they do (setresuid, being
// SIGKILLed) cannot be undone in the test's own process.
const (
	roleEnv   = "LOFTD_CHILD_TEST_ROLE"   // "parent" or "grandchild"
	parentEnv = "LOFTD_CHILD_TEST_PARENT" // the grandchild's parent pid
	// flagsEnv holds the case's steps, comma-separated: "child-as-nobody"
	// (the parent starts it so), "parent-drops", "child-drops" (after the
	// start, to nobody), "child-rearms" (DieWithParent after that).
	flagsEnv = "LOFTD_CHILD_TEST_FLAGS"
)

// nobody is the uid and gid a dropping process switches to.
const nobody = 65534

// TestRole is not a test: it is the code of a re-executed test binary.
func TestRole(t *testing.T) {
	switch os.Getenv(roleEnv) {
	case "parent":
		runParent()
	case "grandchild":
		runGrandchild()
	default:
		t.Skip("only as a re-executed test binary")
	}
}

func has(flag string) bool {
	return strings.Contains(","+os.Getenv(flagsEnv)+",", ","+flag+",")
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}

// runParent starts the grandchild with Start (SIGKILL on the parent's
// death), as nobody when asked, then changes its own ids when asked, and
// only then passes on the grandchild's pid on fd 3, and waits to be killed.
func runParent() {
	r, w, err := os.Pipe()
	if err != nil {
		fatal("parent: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRole$", "-test.count=1")
	cmd.Env = append(os.Environ(), roleEnv+"=grandchild", fmt.Sprintf("%s=%d", parentEnv, os.Getpid()))
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if has("child-as-nobody") {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	}
	if _, err := Start("grandchild", cmd, Options{DeathSignal: syscall.SIGKILL}); err != nil {
		fatal("parent: %v", err)
	}
	w.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		fatal("parent: the grandchild did not get ready: %v", err)
	}
	if has("parent-drops") {
		dropIDs("parent")
	}
	ready := os.NewFile(3, "ready")
	fmt.Fprint(ready, line)
	ready.Close()
	select {}
}

// runGrandchild changes its ids and sets its death signal again when
// asked, then reports its pid on fd 3 and waits.
func runGrandchild() {
	if has("child-drops") {
		dropIDs("grandchild")
	}
	if has("child-rearms") {
		parent, _ := strconv.Atoi(os.Getenv(parentEnv))
		if err := DieWithParent(syscall.SIGKILL, parent); err != nil {
			fatal("grandchild: %v", err)
		}
	}
	ready := os.NewFile(3, "ready")
	fmt.Fprintf(ready, "%d\n", os.Getpid())
	ready.Close()
	select {}
}

// dropIDs switches every thread to nobody, for good.
func dropIDs(who string) {
	if err := syscall.Setgroups(nil); err != nil {
		fatal("%s: setgroups: %v", who, err)
	}
	if err := syscall.Setresgid(nobody, nobody, nobody); err != nil {
		fatal("%s: setresgid: %v", who, err)
	}
	if err := syscall.Setresuid(nobody, nobody, nobody); err != nil {
		fatal("%s: setresuid: %v", who, err)
	}
}

// TestChildDiesWithParent: a SIGKILLed parent takes its child along,
// across the ids either changes, within two limits of the kernel's, which
// the cases that survive show. A child that changes its own ids loses its
// death signal, unless it sets it again (DieWithParent), as passt and the
// keep-id child have to. And the signal is sent as the dying parent: one
// that gave up its uid after starting a child it may then no longer signal
// leaves that child alive.
func TestChildDiesWithParent(t *testing.T) {
	tests := []struct {
		name     string
		flags    string
		root     bool // setresuid needs it
		wantDies bool
	}{
		{"plain", "", false, true},
		{"child started as nobody", "child-as-nobody", true, true},
		{"parent drops to nobody after starting a nobody child", "child-as-nobody,parent-drops", true, true},
		{"parent drops to nobody after starting a root child", "parent-drops", true, false},
		{"child drops to nobody", "child-drops", true, false},
		{"child drops to nobody and sets its death signal again", "child-drops,child-rearms", true, true},
		{"both drop, child sets its death signal again", "parent-drops,child-drops,child-rearms", true, true},
	}
	bin := os.Args[0]
	if os.Geteuid() == 0 {
		bin = worldBinary(t)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testenv.RequireRoot(t)
			}
			grandchild, kill := startParent(t, bin, tt.flags)
			kill()
			// A survivor is given less time: it never goes.
			within := 10 * time.Second
			if !tt.wantDies {
				within = 2 * time.Second
			}
			if gone := waitGone(grandchild, within); gone != tt.wantDies {
				t.Errorf("grandchild (pid %d) gone %v %v after its parent was SIGKILLed, want %v", grandchild, gone, within, tt.wantDies)
			}
			_ = syscall.Kill(grandchild, syscall.SIGKILL)
		})
	}
}

// worldBinary is a copy of the test binary that nobody may run (go test's
// own is under a 0700 directory).
func worldBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "loftd-child-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, err := os.ReadFile(os.Args[0])
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	bin := filepath.Join(dir, "child.test")
	if err == nil {
		err = os.WriteFile(bin, data, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startParent runs bin (the test binary) as a parent with flags and
// returns its grandchild's pid, once both are ready, and the function that
// SIGKILLs the parent.
func startParent(t *testing.T, bin, flags string) (int, func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A file, not a pipe, for the output: a leaked grandchild would hold
	// a pipe open, and Wait would wait for it.
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(bin, "-test.run=^TestRole$", "-test.count=1")
	cmd.Env = append(os.Environ(), roleEnv+"=parent", flagsEnv+"="+flags)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(r).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("the grandchild did not report its pid (%q, %v):\n%s", line, errors.Join(err, perr), b)
	}
	return pid, func() {
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}
}

// waitGone polls until pid is gone or a zombie (its parent is dead: init
// reaps it); it reports whether it went within the deadline.
func waitGone(pid int, within time.Duration) bool {
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i:]), ") Z") {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestStop: Stop ends a child that heeds SIGTERM with SIGTERM, escalates
// to SIGKILL after the grace for one that ignores it, and reaps either;
// a second Stop is a no-op.
func TestStop(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   syscall.Signal
	}{
		{"heeds SIGTERM", "echo; exec sleep 600", syscall.SIGTERM},
		// An ignored signal stays ignored across exec.
		{"ignores SIGTERM", "trap '' TERM; echo; exec sleep 600", syscall.SIGKILL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", tt.script)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			p, err := Start("sleeper", cmd, Options{DeathSignal: syscall.SIGKILL, OwnGroup: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.Wait() })
			if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
				t.Fatalf("the child did not get ready: %v", err)
			}
			if err := p.Stop(200 * time.Millisecond); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if done, _ := p.Exited(); !done {
				t.Fatal("Stop returned before the child was reaped")
			}
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != tt.want {
				t.Errorf("the child ended with %v, want killed by %v", cmd.ProcessState, tt.want)
			}
			if err := p.Stop(time.Second); err != nil {
				t.Errorf("second Stop: %v", err)
			}
		})
	}
}

// TestStartOptions: Start applies the death signal and the process group
// it is given, and keeps the caller's other SysProcAttr fields.
func TestStartOptions(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		wantGroup bool // the child leads its own process group
		wantSig   syscall.Signal
	}{
		{"own group, SIGKILL", Options{DeathSignal: syscall.SIGKILL, OwnGroup: true}, true, syscall.SIGKILL},
		{"our group, SIGTERM", Options{DeathSignal: syscall.SIGTERM}, false, syscall.SIGTERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", "exec sleep 600")
			own := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), NoSetGroups: true}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: own}
			p, err := Start("sleeper", cmd, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop(time.Second)
			if cmd.SysProcAttr.Credential != own || cmd.SysProcAttr.Pdeathsig != tt.wantSig {
				t.Errorf("SysProcAttr = %+v, want the Credential kept and Pdeathsig %v", cmd.SysProcAttr, tt.wantSig)
			}
			pgid, err := syscall.Getpgid(p.Pid())
			if err != nil {
				t.Fatal(err)
			}
			if got := pgid == p.Pid(); got != tt.wantGroup {
				t.Errorf("child pgid %d, pid %d: own group %v, want %v", pgid, p.Pid(), got, tt.wantGroup)
			}
		})
	}
}

// TestStartOutlivesCallerThread: a child started from a thread that then
// ends (a goroutine that exits while locked to it) keeps running: Start
// forks from a thread of its own, which lives until the reaping.
func TestStartOutlivesCallerThread(t *testing.T) {
	type started struct {
		p   *Process
		tid int
		err error
	}
	var s started
	for tries := 0; ; tries++ {
		ch := make(chan started, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
			if unix.Gettid() == os.Getpid() {
				// The main thread is never ended, only parked.
				ch <- started{tid: -1}
				return
			}
			p, err := Start("sleeper", exec.Command("/bin/sh", "-c", "exec sleep 600"), Options{DeathSignal: syscall.SIGKILL})
			ch <- started{p, unix.Gettid(), err}
		}()
		if s = <-ch; s.tid != -1 || tries == 3 {
			break
		}
	}
	if s.err != nil || s.p == nil {
		t.Fatalf("Start: %v (on the main thread: %v)", s.err, s.tid == -1)
	}
	defer s.p.Stop(time.Second)
	task := fmt.Sprintf("/proc/self/task/%d", s.tid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(task); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the caller's thread %d did not end", s.tid)
		}
	}
	select {
	case <-s.p.Done():
		t.Fatalf("the child ended with the thread that called Start: %v", s.p.err)
	case <-time.After(time.Second):
	}
}

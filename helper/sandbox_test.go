package helper

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/confine"
	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/launch"
	"golang.org/x/sys/unix"
)

// confinedEnv makes this test binary, re-run as a child, a helper that
// confines itself with the plan in the variable's JSON (probeRun) and then,
// through afterConfine, tries each probe. The variable is read only here,
// in the test binary: loftd has no such hook.
const confinedEnv = "_LOFTD_TEST_CONFINED_HELPER"

func TestMain(m *testing.M) {
	if run := os.Getenv(confinedEnv); run != "" {
		os.Exit(confinedChild(run))
	}
	if dir := os.Getenv(krunConfinedEnv); dir != "" {
		afterConfine = func(*Helper) {
			st, err := confine.ReadStatus("/proc", os.Getpid())
			fmt.Printf("confined: %v %v\n", st, err)
		}
		os.Exit((&Helper{TaskDir: dir, ErrFile: os.Stdout, Log: slog.New(slog.DiscardHandler)}).Run())
	}
	os.Exit(m.Run())
}

// probeRun is what the parent test hands the child.
type probeRun struct {
	Plan    launch.Plan `json:"plan"`
	TaskDir string      `json:"task_dir"`
	Home    string      `json:"home"`
	Socket  string      `json:"socket"`   // a UNIX socket outside the allowance
	TCP     string      `json:"tcp"`      // a TCP listener on the host
	Tracee  int         `json:"tracee"`   // a process to ptrace
	MountAt string      `json:"mount_at"` // an empty directory to mount on
}

// probe is one thing a confined helper must not do; each returns nil
// when the thing worked.
type probe struct {
	name string
	try  func(r probeRun) error
}

var probes = []probe{
	{"read /etc/shadow", func(probeRun) error { _, err := os.ReadFile("/etc/shadow"); return err }},
	{"write into $HOME", func(r probeRun) error {
		return os.WriteFile(filepath.Join(r.Home, "planted"), []byte("x"), 0o644)
	}},
	{"ptrace", func(r probeRun) error {
		if err := unix.PtraceAttach(r.Tracee); err != nil {
			return err
		}
		var ws unix.WaitStatus
		_, _ = unix.Wait4(r.Tracee, &ws, unix.WALL, nil)
		return unix.PtraceDetach(r.Tracee)
	}},
	{"mount", func(r probeRun) error {
		if err := unix.Mount("tmpfs", r.MountAt, "tmpfs", 0, "size=1m"); err != nil {
			return err
		}
		return unix.Unmount(r.MountAt, 0)
	}},
	{"user namespace", func(probeRun) error { return cloneUserNS() }},
	{"connect to a host UNIX socket", func(r probeRun) error { return dial("unix", r.Socket) }},
	{"connect to a host TCP port", func(r probeRun) error { return dial("tcp", r.TCP) }},
	{"exec a program", func(probeRun) error { return exec.Command("/bin/true").Run() }},
}

// allowed are what the confined helper still does: the probes above fail
// for the sandbox, not for a broken test.
var allowed = []probe{
	{"write into the task directory", func(r probeRun) error {
		return os.WriteFile(filepath.Join(r.TaskDir, "allowed"), []byte("x"), 0o644)
	}},
}

func dial(network, addr string) error {
	c, err := net.Dial(network, addr)
	if err == nil {
		c.Close()
	}
	return err
}

// cloneUserNS forks a child into a new user namespace (unshare would fail
// in any multi-threaded process), which exits at once.
func cloneUserNS() error {
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(unix.CLONE_NEWUSER|unix.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	if pid == 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	var ws unix.WaitStatus
	_, err := unix.Wait4(int(pid), &ws, 0, nil)
	return err
}

func confinedChild(run string) int {
	var r probeRun
	if err := json.Unmarshal([]byte(run), &r); err != nil {
		fmt.Println("decode:", err)
		return 1
	}
	afterConfine = func(*Helper) {
		for _, p := range append(append([]probe{}, probes...), allowed...) {
			err := p.try(r)
			fmt.Printf("%s: %v\n", p.name, errText(err))
		}
	}
	h := &Helper{TaskDir: r.TaskDir, Log: slog.New(slog.DiscardHandler)}
	if err := h.confine(&r.Plan, nil); err != nil {
		fmt.Println("confine:", err)
		return 1
	}
	return 0
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// TestConfinedHelperProbes: after confinement (the helper's own policy,
// for each backend) every probe fails, and with --vmm-sandbox=off every
// probe works, so each failure is the sandbox's.
func TestConfinedHelperProbes(t *testing.T) {
	testenv.RequireRoot(t)
	base := t.TempDir()
	taskDir, home, mnt, root := filepath.Join(base, "task"), filepath.Join(base, "home"), filepath.Join(base, "mnt"), filepath.Join(base, "root")
	for _, d := range []string{taskDir, home, mnt, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	disk := filepath.Join(base, "disk.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(base, "host.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	for _, l := range []net.Listener{ul, tl} {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	tracee := exec.Command("sleep", "60")
	if err := tracee.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { tracee.Process.Kill(); tracee.Wait() }()

	for _, vmm := range []launch.VMM{launch.VMMQEMU, launch.VMMKrun} {
		for _, mode := range []confine.Mode{confine.Enforce, confine.Off} {
			t.Run(fmt.Sprintf("%s/%s", vmm, mode), func(t *testing.T) {
				plan := launch.Plan{Version: launch.Version, VMM: vmm, Root: root, Sandbox: mode,
					Disks: []launch.Disk{{ID: "d", Path: disk}}, Network: launch.Network{Mode: launch.NetworkPasst}}
				run, err := json.Marshal(probeRun{Plan: plan, TaskDir: taskDir, Home: home, Socket: sock,
					TCP: tl.Addr().String(), Tracee: tracee.Process.Pid, MountAt: mnt})
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), confinedEnv+"="+string(run))
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("child: %v\n%s", err, out)
				}
				got := map[string]string{}
				for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					name, res, _ := strings.Cut(line, ": ")
					got[name] = res
				}
				for _, p := range probes {
					res, ok := got[p.name]
					switch {
					case !ok:
						t.Errorf("%s: no result in the child's output:\n%s", p.name, out)
					case mode == confine.Off && res != "ok":
						t.Errorf("%s unconfined: %s, want ok (the probe itself is broken)", p.name, res)
					case mode == confine.Enforce && res == "ok":
						t.Errorf("%s confined: ok, want an error", p.name)
					}
				}
				for _, p := range allowed {
					if got[p.name] != "ok" {
						t.Errorf("%s (%s): %q, want ok", p.name, mode, got[p.name])
					}
				}
				t.Logf("%s:\n%s", mode, out)
			})
		}
	}
}

// krunConfinedEnv makes this test binary, re-run as a child, the helper of
// the krun plan in the named task directory (the libkrun double), not dry.
const krunConfinedEnv = "_LOFTD_TEST_KRUN_CONFINED"

// TestHelperKrunConfined: the krun path configures libkrun (the double),
// confines itself under the plan's policy and still reports its next
// failure to the parent (here CheckKVM's, or the double's
// krun_start_enter's on a host with KVM) through the error fd.
func TestHelperKrunConfined(t *testing.T) {
	dir := krunPlan(t, func(p *launch.Plan) {
		root := t.TempDir()
		disk := filepath.Join(t.TempDir(), "nix.raw")
		if err := os.WriteFile(disk, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		p.Root, p.Disks, p.Shares = root, []launch.Disk{{ID: "loftd-nix", Path: disk}}, []launch.Share{{Tag: "loftd-workspace", Path: t.TempDir()}}
	})
	status, out := runKrunChild(t, dir)
	if status != 125 {
		t.Fatalf("confined krun helper: status %d, want 125:\n%s", status, out)
	}
	if !strings.Contains(string(out), "confined: uid=") || !strings.Contains(string(out), "nnp=true seccomp=2 <nil>") {
		t.Errorf("the helper did not confine itself before krun_start_enter:\n%s", out)
	}
	if !strings.Contains(string(out), `"phase":"krun_start_enter"`) {
		t.Errorf("the confined helper's error did not reach the error fd:\n%s", out)
	}
}

// runKrunChild runs the helper on the krun plan in dir in a child of this
// test binary (the helper confines itself: this process must not) and
// returns its status and output (stdout is its error fd).
func runKrunChild(t *testing.T, dir string) (int, []byte) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), krunConfinedEnv+"="+dir)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("krun helper child did not run: %s", stderr.String())
	}
	return cmd.ProcessState.ExitCode(), []byte(stdout.String() + stderr.String())
}

// runKrunHelper is runKrunChild decoding the Error the helper reported.
func runKrunHelper(t *testing.T, dir string) (int, Error) {
	t.Helper()
	status, out := runKrunChild(t, dir)
	var he Error
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &he) == nil {
			return status, he
		}
	}
	t.Fatalf("no Error from the helper (status %d):\n%s", status, out)
	return status, he
}

// TestHelperPolicy pins what each backend's helper keeps.
func TestHelperPolicy(t *testing.T) {
	base := launch.Plan{Root: "/r", Disks: []launch.Disk{{ID: "d", Path: "/d.raw", ReadOnly: true}},
		Shares: []launch.Share{{Tag: "w", Path: "/w"}}}
	has := func(list []string, name string) bool { return slices.Contains(list, name) }
	for _, tt := range []struct {
		name                         string
		vmm                          launch.VMM
		network                      launch.NetworkMode
		wantPaths                    []string // besides /t, /dev and what is mapped
		wantTCP, wantSocket, wantSig bool
	}{
		{"qemu", launch.VMMQEMU, launch.NetworkPasst, nil, false, false, false},
		{"krun passt", launch.VMMKrun, launch.NetworkPasst, []string{"rw /r", "ro /d.raw", "rw /w"}, false, false, true},
		{"krun tsi", launch.VMMKrun, launch.NetworkTSI, []string{"rw /r", "ro /d.raw", "rw /w"}, true, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			p.VMM, p.Network.Mode = tt.vmm, tt.network
			pol := helperPolicy(&p, "/t")
			var paths []string
			for _, r := range pol.Paths {
				if r.Path != "/t" && !strings.HasPrefix(r.Path, "/dev/") && !r.Optional {
					paths = append(paths, r.String())
				}
			}
			if !slices.Equal(paths, tt.wantPaths) || pol.Paths[0].String() != "rw /t" {
				t.Errorf("paths = %q (first %s), want rw /t and %q", paths, pol.Paths[0], tt.wantPaths)
			}
			if pol.AllowTCP != tt.wantTCP || has(pol.Syscalls, "connect") != tt.wantSocket || pol.ScopeSignals != tt.wantSig {
				t.Errorf("tcp %v, connect %v, scoped signals %v; want %v, %v, %v", pol.AllowTCP, has(pol.Syscalls, "connect"), pol.ScopeSignals, tt.wantTCP, tt.wantSocket, tt.wantSig)
			}
			for _, never := range []string{"execve", "execveat", "mount", "ptrace", "unshare", "setns", "socket"} {
				if has(pol.Syscalls, never) && !(never == "socket" && tt.wantSocket) {
					t.Errorf("the allow-list has %s", never)
				}
			}
			if !pol.NoNewNamespaces {
				t.Errorf("clone may make namespaces")
			}
		})
	}
}

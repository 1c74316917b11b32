package guestinit

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/internal/testenv"
	"golang.org/x/sys/unix"
)

// fakeSystem records mounts instead of making them; magics says which
// targets already hold a filesystem, busy which mounts fail with EBUSY.
type fakeSystem struct {
	mounts  []string
	magics  map[string]int64
	busy    map[string]bool
	env     []string
	environ []string // the process environment (libkrun sets it)
	config  string
	ends    []string // Sync, Reboot and Exit calls, in order
}

func (f *fakeSystem) system(t *testing.T) System {
	return System{
		Mount: func(source, target, fstype string, flags uintptr, data string) error {
			if f.busy[target] {
				return unix.EBUSY
			}
			f.mounts = append(f.mounts, fmt.Sprintf("%s %s %s %s", fstype, source, target, data))
			return nil
		},
		FSMagic: func(p string) (int64, error) {
			if m, ok := f.magics[p]; ok {
				return m, nil
			}
			return 0, os.ErrNotExist
		},
		MkdirAll: func(string, os.FileMode) error { return nil },
		ReadFile: func(p string) ([]byte, error) {
			if p == contract.KrunConfigPath {
				return []byte(f.config), nil
			}
			return nil, os.ErrNotExist
		},
		SetEnv:  func(env []string) { f.env = env },
		Environ: func() []string { return f.environ },
		Sync:    func() { f.ends = append(f.ends, "sync") },
		Reboot: func(cmd int) error {
			f.ends = append(f.ends, fmt.Sprintf("reboot %#x", cmd))
			return unix.EPERM
		},
		Exit:    func(code int) { f.ends = append(f.ends, fmt.Sprintf("exit %d", code)) },
		SysRoot: "/",
		Stderr:  &strings.Builder{},
		Now:     time.Now,
	}
}

func TestStepList(t *testing.T) {
	early := []string{
		"mount -t proc -o nosuid,nodev proc /proc",
		"mount -t sysfs -o nosuid,nodev sysfs /sys",
		"mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev",
		"mount -t devpts -o nosuid,newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts",
		"mount -t cgroup2 -o nosuid,nodev cgroup2 /sys/fs/cgroup",
		"mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp",
		"mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run",
		"read /.krun_config.json",
	}
	baseline := func(hostname string, aliases ...string) []string {
		b := []string{
			"mount -t tmpfs -o nosuid,nodev,mode=1777 shm /dev/shm",
			"mount -t mqueue -o nosuid,nodev mqueue /dev/mqueue",
			"ln -s /proc/self/fd /dev/fd",
			"ln -s /proc/self/fd/0 /dev/stdin",
			"ln -s /proc/self/fd/1 /dev/stdout",
			"ln -s /proc/self/fd/2 /dev/stderr",
			"ip link set lo up",
		}
		hosts := "hosts /etc/hosts localhost"
		if hostname != "" {
			b = append(b, "hostname "+hostname)
			hosts += " " + hostname
		}
		for _, a := range aliases {
			hosts += " " + a
		}
		return append(b, hosts, "ln -s /proc/self/mounts /etc/mtab", "sysctl kernel.dmesg_restrict=1")
	}
	tail := func(user, cmd string) []string {
		return []string{
			"user " + user,
			"wire stdio krun-stdin krun-stdout krun-stderr",
			"serve ssh on the control channel (in the background)",
			"bootstrap /.loftd/bootstrap",
			"run " + cmd,
			"report status on loftd-status",
		}
	}
	tests := []struct {
		name  string
		guest contract.Guest
		cmd   []string
		want  []string
	}{
		{"no workspace, login shell, root", contract.Guest{Mode: contract.ModeEnter, User: "dev", Root: true}, nil,
			slices.Concat(early, baseline(""), tail("dev 0:0 (workload stays root)", "$SHELL -l"))},
		{"workspace, user, hostname", contract.Guest{Mode: contract.ModeEnter, WorkspaceTag: contract.WorkspaceTag,
			User: "alice", UID: 1001, GID: 1002, Hostname: "proj"},
			[]string{"sh", "-c", "make test"},
			slices.Concat(early, baseline("proj"), []string{"mount -t virtiofs -o nosuid loftd-workspace /workspace"},
				tail("alice 1001:1002", "sh -c make test"))},
		{"passt network", contract.Guest{Mode: contract.ModeEnter, User: "dev", Root: true, Network: contract.NetworkPasst}, nil,
			slices.Concat(early, baseline("", "host.containers.internal", "host.docker.internal"), []string{
				"ip link set eth0 up; ip addr replace 10.0.2.15/24 dev eth0; ip route replace default via 10.0.2.2",
				"resolv.conf nameserver 10.0.2.3 (unless the image has one)",
			}, tail("dev 0:0 (workload stays root)", "$SHELL -l"))},
		{"no network: lo only", contract.Guest{Mode: contract.ModeEnter, User: "dev", Root: true, Network: contract.NetworkNone}, nil,
			slices.Concat(early, baseline(""), tail("dev 0:0 (workload stays root)", "$SHELL -l"))},
		{"host CAs for the trust store", contract.Guest{Mode: contract.ModeEnter, User: "dev", Root: true, Network: contract.NetworkNone, Trust: true}, nil,
			slices.Concat(early, baseline(""), []string{"add /.loftd/trust.pem to the CA bundles"}, tail("dev 0:0 (workload stays root)", "$SHELL -l"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSystem{}
			e := newEnter(f.system(t), false, tt.cmd)
			e.guest = tt.guest
			var got []string
			for _, s := range append(e.earlySteps(), e.planSteps()...) {
				got = append(got, s.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("steps(%+v) =\n  %s\nwant\n  %s", tt.guest, strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// TestEarlySteps runs the early steps against a fake system: mounts already
// in place (by libkrun's init or the kernel) are skipped, EBUSY is fine,
// and the config read as PID 1 yields the command and the environment.
func TestEarlySteps(t *testing.T) {
	f := &fakeSystem{
		magics: map[string]int64{"/proc": magicProc, "/dev": magicTmpfs, "/tmp": magicTmpfs},
		busy:   map[string]bool{"/sys/fs/cgroup": true},
		config: `{"Cmd":["/.loftd/guest-init","enter","--","sh","-c","exit 3"],` +
			`"Env":["LOFTD_MODE=enter","PATH=/bin","LOFTD_PROFILE=1"],"WorkingDir":"/workspace"}`,
	}
	e := newEnter(f.system(t), true, nil)
	if err := e.runSteps(e.earlySteps()); err != nil {
		t.Fatalf("early steps: %v", err)
	}
	// /tmp is not skipped: a tmpfs there could be the image's, not ours.
	want := []string{"sysfs sysfs /sys ", "devpts devpts /dev/pts newinstance,ptmxmode=0666,mode=0620,gid=5",
		"tmpfs tmpfs /tmp mode=1777", "tmpfs tmpfs /run mode=0755"}
	if !slices.Equal(f.mounts, want) {
		t.Errorf("mounts = %q, want %q", f.mounts, want)
	}
	if want := []string{"sh", "-c", "exit 3"}; !slices.Equal(e.cmd, want) {
		t.Errorf("command from config = %q, want %q", e.cmd, want)
	}
	// The config's PATH wins; the other defaults fill what it leaves unset.
	if want := []string{"LOFTD_MODE=enter", "PATH=/bin", "LOFTD_PROFILE=1", "HOME=/root", "TERM=linux", "LANG=C.UTF-8"}; !slices.Equal(f.env, want) {
		t.Errorf("environment from config = %q, want %q", f.env, want)
	}
	if !e.profile || e.cfg.WorkingDir != "/workspace" {
		t.Errorf("profile = %v, WorkingDir = %q, want true, /workspace", e.profile, e.cfg.WorkingDir)
	}
}

func TestReadConfigErrors(t *testing.T) {
	tests := []struct {
		name, config, want string
	}{
		{"unknown field", `{"Cmd":["/.loftd/guest-init","enter"],"Env":["LOFTD_MODE=enter"],"Hostname":"x"}`, "unknown field"},
		{"trailing data", `{"Cmd":["/.loftd/guest-init","enter"],"Env":["LOFTD_MODE=enter"]} {}`, "data after"},
		{"no mode", `{"Cmd":["/.loftd/guest-init","enter"],"Env":[]}`, contract.EnvMode},
		{"not enter", `{"Cmd":["/.loftd/guest-init","version"],"Env":["LOFTD_MODE=enter"]}`, "does not run"},
		{"no --", `{"Cmd":["/.loftd/guest-init","enter","sh"],"Env":["LOFTD_MODE=enter"]}`, "want --"},
		{"check not here yet", `{"Cmd":["/.loftd/guest-init","enter"],"Env":["LOFTD_MODE=check"]}`, "not implemented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSystem{config: tt.config}
			e := newEnter(f.system(t), true, nil)
			err := e.readConfig()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("readConfig(%s) = %v, want an error containing %q", tt.config, err, tt.want)
			}
		})
	}
}

func TestRunStatus(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "notexec")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	t.Setenv("PATH", "/usr/bin:/bin")
	tests := []struct {
		argv []string
		want int
	}{
		{[]string{"sh", "-c", "exit 0"}, 0},
		{[]string{"sh", "-c", "exit 7"}, 7},
		{[]string{"sh", "-c", "kill -9 $$"}, 137},
		{[]string{"sh", "-c", "kill -TERM $$"}, 143},
		{[]string{"/no/such/command"}, contract.ExitNotFound},
		{[]string{"no-such-command-in-path"}, contract.ExitNotFound},
		{[]string{notExec}, contract.ExitNotExecutable},
		{[]string{dir}, contract.ExitNotExecutable},
	}
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer devnull.Close()
	files := []*os.File{devnull, devnull, devnull}
	for _, tt := range tests {
		if got := runCommand(tt.argv, dir, files, nil, devnull); got != tt.want {
			t.Errorf("runCommand(%q) = %d, want %d", tt.argv, got, tt.want)
		}
	}
}

func TestFindPorts(t *testing.T) {
	root := t.TempDir()
	for port, name := range map[string]string{"vport1p1": "krun-stdin\n", "vport1p2": "krun-stdout\n", "vport1p3": "", "vport2p1": "loftd-status"} {
		d := filepath.Join(root, "sys/class/virtio-ports", port)
		os.MkdirAll(d, 0o755)
		if name != "" {
			os.WriteFile(filepath.Join(d, "name"), []byte(name), 0o444)
		}
	}
	got, err := findPorts(root)
	want := map[string]string{
		"krun-stdin":   filepath.Join(root, "dev/vport1p1"),
		"krun-stdout":  filepath.Join(root, "dev/vport1p2"),
		"loftd-status": filepath.Join(root, "dev/vport2p1"),
	}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("findPorts(%s) = %v, %v, want %v", root, got, err, want)
	}
}

func TestParseEnterArgs(t *testing.T) {
	tests := []struct {
		args    []string
		want    []string
		wantErr bool
	}{
		{nil, nil, false},
		{[]string{"--"}, []string{}, false},
		{[]string{"--", "ls", "-l"}, []string{"ls", "-l"}, false},
		{[]string{"ls"}, nil, true},
	}
	for _, tt := range tests {
		got, err := parseEnterArgs(tt.args)
		if !slices.Equal(got, tt.want) || (err != nil) != tt.wantErr {
			t.Errorf("parseEnterArgs(%q) = %q, %v, want %q, error %v", tt.args, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestInitRecord(t *testing.T) {
	tests := []struct {
		rec  string
		want int64
		ok   bool
	}{
		{"6,312,2736094,-;Run /.loftd/guest-init as init process\n", 2736094, true},
		{"6,313,2736094,-;  with arguments:\n", 0, false},
		{"6,1,0,-;Run queue\n", 0, false},
		{"garbage", 0, false},
	}
	for _, tt := range tests {
		got, ok := initRecord(tt.rec)
		if got != tt.want || ok != tt.ok {
			t.Errorf("initRecord(%q) = %d, %v, want %d, %v", tt.rec, got, ok, tt.want, tt.ok)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		env      []string
		wantPath string
	}{
		{nil, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		{[]string{"PATH=/opt/bin"}, "PATH=/opt/bin"},
	}
	for _, tt := range tests {
		got := withDefaults(tt.env)
		n := 0
		for _, kv := range got {
			if strings.HasPrefix(kv, "PATH=") {
				n++
				if kv != tt.wantPath {
					t.Errorf("withDefaults(%q) PATH = %q, want %q", tt.env, kv, tt.wantPath)
				}
			}
		}
		// Every entry of tt.env is a default name, so the result has exactly one of each.
		if n != 1 || len(got) != len(defaultEnv) {
			t.Errorf("withDefaults(%q) = %q: want one PATH and every default once", tt.env, got)
		}
	}
}

// TestFinishFallback: as PID 1 a failed reboot falls back to power-off and
// then to exiting PID 1 (a kernel panic, which panic=-1 turns into a
// reboot): the guest must never just sit there.
func TestFinishFallback(t *testing.T) {
	f := &fakeSystem{}
	sys := f.system(t)
	if got := sys.finish(7, false); got != 7 || len(f.ends) != 0 {
		t.Errorf("finish(7, not PID 1) = %d with %q, want 7 and nothing ended", got, f.ends)
	}
	sys.finish(7, true)
	want := []string{"sync", fmt.Sprintf("reboot %#x", unix.LINUX_REBOOT_CMD_RESTART),
		fmt.Sprintf("reboot %#x", unix.LINUX_REBOOT_CMD_POWER_OFF), "exit 7"}
	if !slices.Equal(f.ends, want) {
		t.Errorf("finish(7, PID 1) with reboot failing = %q, want %q", f.ends, want)
	}
}

// TestDefaultEnvBothBackends: the PATH/HOME/TERM/LANG defaults apply when
// the environment comes from the config (QEMU, PID 1) and when it is the
// process's own (libkrun).
func TestDefaultEnvBothBackends(t *testing.T) {
	config := `{"Cmd":["/.loftd/guest-init","enter"],"Env":["LOFTD_MODE=enter","PATH=/bin"]}`
	tests := []struct {
		name       string
		fromConfig bool
		environ    []string
		want       []string
	}{
		{"qemu: from the config", true, []string{"TERM=xterm"},
			[]string{"LOFTD_MODE=enter", "PATH=/bin", "HOME=/root", "TERM=linux", "LANG=C.UTF-8"}},
		{"libkrun: the process environment", false, []string{"LOFTD_MODE=enter", "TERM=xterm"},
			[]string{"LOFTD_MODE=enter", "TERM=xterm", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSystem{config: config, environ: tt.environ}
			e := newEnter(f.system(t), tt.fromConfig, nil)
			if err := e.readConfig(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.env, tt.want) {
				t.Errorf("environment = %q, want %q", f.env, tt.want)
			}
		})
	}
}

// TestReapOrphans: runCommand reaps the children the workload leaves
// behind (orphans reach a subreaper the way they reach PID 1) and still
// returns the workload's own status.
func TestReapOrphans(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		testenv.Missing(t, "PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	t.Setenv("PATH", "/usr/bin:/bin")
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer devnull.Close()
	files := []*os.File{devnull, devnull, devnull}
	// The subshell's child outlives it and becomes ours; it ends before sh.
	argv := []string{"sh", "-c", "(sleep 0.1 &); sleep 0.5; exit 4"}
	if got := runCommand(argv, "/", files, nil, devnull); got != 4 {
		t.Errorf("runCommand(%q) = %d, want 4", argv, got)
	}
	var ws unix.WaitStatus
	if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid > 0 {
		t.Errorf("after runCommand: child %d left unreaped (wait4: %v)", pid, err)
	}
}

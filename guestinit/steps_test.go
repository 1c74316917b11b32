package guestinit

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/guestinit/contract"
	"golang.org/x/sys/unix"
)

// fakeSystem records mounts instead of making them; magics says which
// targets already hold a filesystem, busy which mounts fail with EBUSY.
type fakeSystem struct {
	mounts []string
	magics map[string]int64
	busy   map[string]bool
	env    []string
	config string
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
		SysRoot: "/",
		Stderr:  &strings.Builder{},
		Now:     time.Now,
	}
}

func TestStepList(t *testing.T) {
	early := []string{
		"mount -t proc proc /proc",
		"mount -t sysfs sysfs /sys",
		"mount -t devtmpfs -o mode=0755 devtmpfs /dev",
		"mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts",
		"mount -t cgroup2 cgroup2 /sys/fs/cgroup",
		"mount -t tmpfs -o mode=1777 tmpfs /tmp",
		"mount -t tmpfs -o mode=0755 tmpfs /run",
		"read /.krun_config.json",
	}
	tail := func(cmd string) []string {
		return []string{
			"wire stdio krun-stdin krun-stdout krun-stderr",
			"user root",
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
		{"no workspace, default shell", contract.Guest{Mode: contract.ModeEnter}, nil,
			append(slices.Clone(early), tail("/bin/sh")...)},
		{"workspace", contract.Guest{Mode: contract.ModeEnter, WorkspaceTag: contract.WorkspaceTag},
			[]string{"sh", "-c", "make test"},
			append(append(slices.Clone(early), "mount -t virtiofs loftd-workspace /workspace"), tail("sh -c make test")...)},
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
		{"resize not here yet", `{"Cmd":["/.loftd/guest-init","enter"],"Env":["LOFTD_MODE=resize","LOFTD_RESIZE_DISK=loftd-nix"]}`, "not implemented"},
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
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	for _, tt := range tests {
		if got := runCommand(tt.argv, dir, devnull); got != tt.want {
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

package guestinit

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/loftd/loftd/contract"
	"golang.org/x/sys/unix"
)

// mountCommand renders a mount(2) call as mount(8) would take it, the
// flags by name: the test's own reading of what a step did, to hold its
// description against.
func mountCommand(source, target, fstype string, flags uintptr, data string) string {
	var opts []string
	for _, f := range []struct {
		flag uintptr
		name string
	}{{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"}, {unix.MS_NOEXEC, "noexec"}, {unix.MS_NOATIME, "noatime"}} {
		if flags&f.flag != 0 {
			opts = append(opts, f.name)
			flags &^= f.flag
		}
	}
	if flags != 0 {
		opts = append(opts, fmt.Sprintf("%#x", flags))
	}
	if data != "" {
		opts = append(opts, data)
	}
	cmd := "mount -t " + fstype
	if len(opts) > 0 {
		cmd += " -o " + strings.Join(opts, ",")
	}
	return cmd + " " + source + " " + target
}

// TestMountStepsSayWhatTheyDo: every mount step's description is the
// mount(2) calls it makes, flags included (it once said nothing of
// MS_NOSUID|MS_NODEV): each step runs on a system that records its calls.
func TestMountStepsSayWhatTheyDo(t *testing.T) {
	vols := []contract.Volume{
		{Tag: "loftd-vol0", Target: "/home/dev/.config/gh"},
		{Tag: "loftd-vol1", Target: "/data", ReadOnly: true},
		{Tag: "loftd-vol2", Target: "/home/dev/.claude", ReadOnly: true, Overlay: true},
	}
	uid, gid := testIDs()
	// No disks in the plan: their steps come from a diskPrep below that
	// has them found already.
	g := contract.Guest{Mode: contract.ModeEnter, User: "dev", UID: uid, GID: gid, WorkspaceTag: contract.WorkspaceTag}
	data, err := json.Marshal(contract.KrunConfig{Cmd: []string{contract.GuestInitPath, "enter"}, Env: append(g.Env(), contract.VolumesEnv(vols)), WorkingDir: "/workspace"})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	var calls []string
	f := &fakeSystem{config: string(data)}
	sys := f.system(t)
	sys.SysRoot = root
	sys.ReadFile = func(p string) ([]byte, error) { return []byte(f.config), nil }
	sys.Mount = func(source, target, fstype string, flags uintptr, data string) error {
		// The disk steps act under the system root; their descriptions
		// name guest paths.
		calls = append(calls, strings.ReplaceAll(mountCommand(source, target, fstype, flags, data), root, ""))
		return nil
	}
	e := newEnter(sys, true, nil)
	if err := e.readConfig(); err != nil {
		t.Fatal(err)
	}
	// The disks as if found: each "device" is named as the description
	// names it, by its label.
	d := &diskPrep{e: e, user: g.User, uid: uid, gid: gid, home: "/home/dev",
		disks: map[string]string{contract.NixLabel: "LABEL=" + contract.NixLabel, contract.ContainersLabel: "LABEL=" + contract.ContainersLabel}}
	steps := append(e.earlySteps(), e.planSteps()...)
	steps = append(steps, d.nixSteps()[:2]...)
	steps = append(steps, d.containerSteps()[0])
	seen := 0
	for _, s := range steps {
		if !strings.HasPrefix(s.String(), "mount ") {
			continue
		}
		seen++
		calls = nil
		if err := s.Do(); err != nil {
			t.Fatalf("step %s: %v", s, err)
		}
		if got := strings.Join(calls, "; "); got != s.String() {
			t.Errorf("step %q made the calls %q", s, got)
		}
	}
	if seen < 16 {
		t.Errorf("%d mount steps checked, want every one of the early, baseline, share, disk and tool-state steps", seen)
	}
}

package guestinit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loftd/loftd/contract"
)

// TestToolStateSteps: an overlaid tool-state share is mounted read-only out
// of sight and overlaid at its target, after the disks, with the upper
// layer on the nix disk (a tmpfs without one); the upper's root takes the
// share root's mode the first time and is kept after (issue 17, item 6).
func TestToolStateSteps(t *testing.T) {
	vols := []contract.Volume{
		{Tag: "loftd-vol0", Target: "/home/dev/.claude", ReadOnly: true, Overlay: true},
		{Tag: "loftd-vol1", Target: "/data"},
	}
	tests := []struct {
		nixDisk string
		base    string
	}{
		{"loftd-nix", "/run/loftd/nix-disk/tool-state"},
		{"", "/run/loftd/tool-state"},
	}
	for _, tt := range tests {
		g := contract.Guest{Mode: contract.ModeEnter, UID: os.Getuid(), GID: os.Getgid(), User: "dev", NixDisk: tt.nixDisk}
		data, err := json.Marshal(contract.KrunConfig{Cmd: []string{contract.GuestInitPath, "enter"}, Env: append(g.Env(), contract.VolumesEnv(vols)), WorkingDir: "/workspace"})
		if err != nil {
			t.Fatal(err)
		}
		f := &fakeSystem{config: string(data)}
		sys := f.system(t)
		sys.SysRoot = t.TempDir()
		readFile := sys.ReadFile
		sys.ReadFile = func(p string) ([]byte, error) {
			return readFile(strings.TrimPrefix(p, sys.SysRoot))
		}
		e := newEnter(sys, true, nil)
		if err := e.readConfig(); err != nil {
			t.Fatal(err)
		}
		steps := e.planSteps()
		var descs []string
		for _, s := range steps {
			descs = append(descs, s.String())
		}
		lower := "/run/loftd/tool-lower/home_2fdev_2f.claude"
		upper := tt.base + "/home_2fdev_2f.claude/upper"
		want := "mount -t virtiofs -o ro,nosuid,nodev loftd-vol0 " + lower + "; mount -t overlay -o nosuid,nodev,lowerdir=" + lower + ",upperdir=" + upper +
			",workdir=" + tt.base + "/home_2fdev_2f.claude/work overlay /home/dev/.claude"
		i := slices.Index(descs, want)
		if i < 0 || !slices.Contains(descs, "mount -t virtiofs -o nosuid,nodev loftd-vol1 /data") || slices.Contains(descs, "mount -t virtiofs -o ro,nosuid,nodev loftd-vol0 /home/dev/.claude") {
			t.Fatalf("nix disk %q: steps %q; want %q and /data mounted plainly", tt.nixDisk, descs, want)
		}
		if tt.nixDisk != "" && !slices.ContainsFunc(descs[:i], func(d string) bool { return strings.Contains(d, "LABEL="+contract.NixLabel) }) {
			t.Errorf("the tool-state overlay comes before the nix disk is mounted: %q", descs)
		}
		// The share's root, as the guest sees it through virtiofs.
		if err := os.MkdirAll(filepath.Join(sys.SysRoot, lower), 0o750); err != nil {
			t.Fatal(err)
		}
		for run := 0; run < 2; run++ {
			if err := steps[i].Do(); err != nil {
				t.Fatalf("step %s: %v", steps[i], err)
			}
		}
		fi, err := os.Stat(filepath.Join(sys.SysRoot, upper))
		if err != nil || fi.Mode().Perm() != 0o750 {
			t.Errorf("upper layer %s: %v, %v; want a 0750 directory like the share's root", upper, fi, err)
		}
		last := f.mounts[len(f.mounts)-1]
		if !strings.HasPrefix(last, "overlay overlay "+filepath.Join(sys.SysRoot, "/home/dev/.claude")+" lowerdir=") {
			t.Errorf("last mount %q, want the overlay on the target", last)
		}
	}
}

func TestToolStateKey(t *testing.T) {
	tests := map[string]string{
		"/home/dev/.claude":     "home_2fdev_2f.claude",
		"/home/dev/.config/gh":  "home_2fdev_2f.config_2fgh",
		"/home/dev/a_b":         "home_2fdev_2fa_5fb",
		"/home/dev/x,upperdir=": "home_2fdev_2fx_2cupperdir_3d",
		"/a:b":                  "a_3ab",
	}
	for in, want := range tests {
		if got := toolStateKey(in); got != want {
			t.Errorf("toolStateKey(%q) = %q, want %q", in, got, want)
		}
	}
}

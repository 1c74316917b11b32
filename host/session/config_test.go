package session

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "loftd.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	p := writeConfig(t, `
volumes = ["/a:/b:ro"]
[state]
location = "/var/lib/loftd"
[vm]
mem = 8
cpus = 3
vmm = "qemu"
[image]
default = "docker.io/library/debian:12"
pull = "always"
[rootfs]
backend = "overlay"
driver = "vfs"
[guest]
init = "/opt/init"
[network]
mode = "tsi"
publish = ["8080:80"]
[env]
pass = ["CODER_*"]
[disks]
nix_size = "128G"
containers_size = "32G"
[agentbox]
mounts = ["~/.claude"]
live_mounts = true
`)
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		State: StateConfig{Location: "/var/lib/loftd"}, VM: VMConfig{Mem: 8, CPUs: 3, VMM: "qemu"},
		Image:  ImageConfig{Default: "docker.io/library/debian:12", Pull: "always"},
		Rootfs: RootfsConfig{Backend: "overlay", Driver: "vfs"}, Guest: GuestConfig{Init: "/opt/init"},
		Network: NetworkConfig{Mode: "tsi", Publish: []string{"8080:80"}}, Env: EnvConfig{Pass: []string{"CODER_*"}},
		Disks: DisksConfig{NixSize: "128G", ContainersSize: "32G"}, Volumes: []string{"/a:/b:ro"}, path: p,
		Agentbox: AgentboxConfig{Mounts: &[]string{"~/.claude"}, LiveMounts: true},
	}
	if got := *cfg; !equalConfig(got, want) {
		t.Errorf("LoadConfig() = %+v\nwant %+v", got, want)
	}
}

func equalConfig(a, b Config) bool {
	return strings.Join(a.Volumes, ",") == strings.Join(b.Volumes, ",") &&
		strings.Join(a.Network.Publish, ",") == strings.Join(b.Network.Publish, ",") &&
		strings.Join(a.Env.Pass, ",") == strings.Join(b.Env.Pass, ",") &&
		a.State == b.State && a.VM == b.VM && a.Image == b.Image && a.Rootfs == b.Rootfs &&
		a.Guest == b.Guest && a.Network.Mode == b.Network.Mode && a.Disks == b.Disks && a.path == b.path &&
		a.Agentbox.LiveMounts == b.Agentbox.LiveMounts && (a.Agentbox.Mounts == nil) == (b.Agentbox.Mounts == nil) &&
		(a.Agentbox.Mounts == nil || strings.Join(*a.Agentbox.Mounts, ",") == strings.Join(*b.Agentbox.Mounts, ","))
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"[vm]\nmemory = 8\n", "unknown key vm.memory"},
		{"colour = 1\n", "unknown key colour"},
		{"[vm]\nmem = \"eight\"\n", "mem"},
		{"[image]\npull = \"sometimes\"\n", `image.pull "sometimes"`},
		{"[vm]\ncpus = -2\n", "must be positive"},
		// Defect 7: a bad size was silently 64 GiB.
		{"[disks]\nnix_size = \"64X\"\n", `disks.nix_size "64X": want a whole number of GiB`},
		{"[disks]\ncontainers_size = \"0\"\n", `disks.containers_size "0"`},
		// Defect 13.
		{"[state]\nlocation = \"relstate\"\n", `state.location "relstate": want an absolute path or one starting with ~/`},
		{"[vm]\nmem = 0\n", "vm.mem = 0: omit the key for the default"},
		{"[vm]\ncpus = 0\n", "vm.cpus = 0: omit the key for the default"},
	}
	for _, tt := range tests {
		p := writeConfig(t, tt.text)
		_, err := LoadConfig(p)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("LoadConfig(%q) error = %v, want one naming %q and the file", tt.text, err, tt.want)
		}
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join(t.TempDir(), "absent.toml"))
	if err != nil || cfg.VM.Mem != 0 {
		t.Errorf("LoadConfig(absent) = %+v, %v, want an empty config", cfg, err)
	}
}

func TestConfigAndStatePaths(t *testing.T) {
	tests := []struct {
		env                   map[string]string
		cfg                   Config
		wantConfig, wantState string
	}{
		{map[string]string{"HOME": "/h"}, Config{}, "/h/.config/loftd/loftd.toml", "/h/.local/state/loftd"},
		{map[string]string{"HOME": "/h", "XDG_CONFIG_HOME": "/c", "XDG_STATE_HOME": "/s"}, Config{}, "/c/loftd/loftd.toml", "/s/loftd"},
		{map[string]string{"HOME": "/h"}, Config{State: StateConfig{Location: "~/x"}}, "/h/.config/loftd/loftd.toml", "/h/x"},
		{map[string]string{"HOME": "/h"}, Config{State: StateConfig{Location: "/abs/x"}}, "/h/.config/loftd/loftd.toml", "/abs/x"},
	}
	for _, tt := range tests {
		getenv := func(k string) string { return tt.env[k] }
		c, err := ConfigPath(getenv)
		if err != nil || c != tt.wantConfig {
			t.Errorf("ConfigPath(%v) = %q, %v, want %q", tt.env, c, err, tt.wantConfig)
		}
		s, err := StateDir(&tt.cfg, getenv)
		if err != nil || s != tt.wantState {
			t.Errorf("StateDir(%v) = %q, %v, want %q", tt.env, s, err, tt.wantState)
		}
	}
}

// TestStateDirRelative: a relative [state] location would depend on the
// current directory; StateDir refuses it even when the config was built in
// code rather than loaded.
func TestStateDirRelative(t *testing.T) {
	cfg := &Config{State: StateConfig{Location: "relstate"}, path: "/c/loftd.toml"}
	if dir, err := StateDir(cfg, func(string) string { return "/h" }); err == nil || !strings.Contains(err.Error(), "/c/loftd.toml") {
		t.Errorf("StateDir(location = relstate) = %q, %v; want an error naming the key and the file", dir, err)
	}
}

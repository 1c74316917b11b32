package session

import (
	"errors"
	"fmt"
	"github.com/loftd/loftd/internal/confine"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/loftd/loftd/disks"
	"github.com/loftd/loftd/launch"
)

// Config is $XDG_CONFIG_HOME/loftd/loftd.toml. Every key is documented in
// docs/configuration.md; flags override it.
type Config struct {
	State     StateConfig     `toml:"state"`
	VM        VMConfig        `toml:"vm"`
	Image     ImageConfig     `toml:"image"`
	Rootfs    RootfsConfig    `toml:"rootfs"`
	Guest     GuestConfig     `toml:"guest"`
	Network   NetworkConfig   `toml:"network"`
	Env       EnvConfig       `toml:"env"`
	Disks     DisksConfig     `toml:"disks"`
	Volumes   []string        `toml:"volumes"`
	Agentbox  AgentboxConfig  `toml:"agentbox"`
	Live      LiveConfig      `toml:"live"`
	Workspace WorkspaceConfig `toml:"workspace"`
	// Secrets are [secrets.NAME] tables (secrets.go).
	Secrets map[string]SecretConfig `toml:"secrets"`
	TLS     TLSConfig               `toml:"tls"`

	path string // where it was read from ("" when no file)
}

type StateConfig struct {
	Location string `toml:"location"`
}

type VMConfig struct {
	Mem  int    `toml:"mem"`  // GiB
	CPUs int    `toml:"cpus"` // vCPUs
	VMM  string `toml:"vmm"`
	// Sandbox is how the VMM processes are confined: enforce (default),
	// audit or off (internal/confine).
	Sandbox string `toml:"sandbox"`
}

type ImageConfig struct {
	Default string `toml:"default"`
	Pull    string `toml:"pull"` // missing, always, never
	// AuthFile is the registry credentials file (see AuthFile).
	AuthFile string `toml:"authfile"`
}

type RootfsConfig struct {
	Backend string `toml:"backend"`
	Driver  string `toml:"driver"` // containers/storage graph driver: auto, btrfs, overlay, vfs
}

type GuestConfig struct {
	Init string `toml:"init"`
}

type NetworkConfig struct {
	Mode    string   `toml:"mode"` // egress, passt, tsi or none
	Publish []string `toml:"publish"`
	// Allow and AllowHost: --allow and --allow-host (network egress).
	Allow     []string `toml:"allow"`
	AllowHost bool     `toml:"allow_host"`
	// Workspaces adds opt-ins for one project directory (the key, an
	// absolute path): [network.workspaces."/home/me/proj"]. They live in
	// the user's file, never in the project: a repository must not open
	// its own egress.
	Workspaces map[string]WorkspaceNetwork `toml:"workspaces"`
}

// WorkspaceNetwork is one workspace's egress opt-ins, added to the
// file's and the flags'.
type WorkspaceNetwork struct {
	Allow     []string `toml:"allow"`
	AllowHost bool     `toml:"allow_host"`
}

type EnvConfig struct {
	Pass []string `toml:"pass"`
}

// AgentboxConfig applies to the agentbox profile only.
type AgentboxConfig struct {
	// Mounts are tool-state paths under the host's home ("~/.codex"),
	// shared at the same path under the guest user's home when they
	// exist. nil (no key) means defaultToolMounts; [] means none.
	Mounts *[]string `toml:"mounts"`
	// LiveMounts shares the tool-state directories read-write, so the
	// guest's changes reach the host's files (and a guest can plant a
	// hook the host's tool then runs). Off: each is a read-only share
	// under a guest overlay whose changes stay with the workspace.
	LiveMounts bool `toml:"live_mounts"`
	// Review makes every agentbox session a review run (--review).
	Review bool `toml:"review"`
}

// WorkspaceConfig is how sessions share and set up the workspace
// (envbox's CODER_BOOTSTRAP_SCRIPT and CODER_INNER_HOSTNAME).
type WorkspaceConfig struct {
	// Review makes every session a review run (--review).
	Review bool `toml:"review"`
	// Bootstrap is a script run once per new workspace, before its first
	// workload (bootstrap.go); a relative path is relative to the workspace.
	Bootstrap string `toml:"bootstrap"`
	// Hostname is the guest's hostname; "" is the workspace's name.
	Hostname string `toml:"hostname"`
}

// LiveConfig is how a workspace VM that outlives its command behaves
// (issue 19).
type LiveConfig struct {
	// IdleTimeout: a detached VM with no session and its main command
	// ended powers off after this long ("30m"; "" or "0": never).
	IdleTimeout string `toml:"idle_timeout"`
	// DetachKeys end `attach` without ending the session (Podman's form;
	// default ctrl-p,ctrl-q).
	DetachKeys string `toml:"detach_keys"`
}

// ParseIdleTimeout reads an idle timeout: a Go duration ("90s", "30m"),
// "" or "0" for none, in whole seconds.
func ParseIdleTimeout(s string) (int, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("idle timeout %q: want a duration such as 90s or 30m (0: never)", s)
	}
	return int((d + time.Second - 1) / time.Second), nil
}

type DisksConfig struct {
	NixSize        string `toml:"nix_size"`
	ContainersSize string `toml:"containers_size"`
}

// ConfigPath is where the config file lives for this environment.
func ConfigPath(getenv func(string) string) (string, error) {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "loftd", "loftd.toml"), nil
	}
	home := homeDir(getenv)
	if home == "" {
		return "", errors.New("config: neither XDG_CONFIG_HOME nor HOME is set, and the user database names no home directory")
	}
	return filepath.Join(home, ".config", "loftd", "loftd.toml"), nil
}

// LoadConfig reads path; a missing file is an empty config. An unknown key
// is an error naming the key and the file, so a typo never silently does
// nothing.
func LoadConfig(path string) (*Config, error) {
	cfg := &Config{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("config %s: unknown key %s (see docs/configuration.md for the keys)", path, strings.Join(keys, ", "))
	}
	cfg.path = path
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// TOML cannot tell "mem = 0" from no key once decoded; the flags refuse
	// 0, so the file does too rather than read it as "default".
	for _, k := range []string{"mem", "cpus"} {
		if md.IsDefined("vm", k) && ((k == "mem" && cfg.VM.Mem == 0) || (k == "cpus" && cfg.VM.CPUs == 0)) {
			return nil, fmt.Errorf("config %s: vm.%s = 0: omit the key for the default", path, k)
		}
	}
	return cfg, nil
}

func (c *Config) validate() error {
	checks := []struct {
		key, v  string
		allowed []string
	}{
		{"image.pull", c.Image.Pull, []string{"missing", "always", "never"}},
		{"rootfs.backend", c.Rootfs.Backend, []string{"auto", "btrfs-snapshot", "overlay", "fuse-overlay"}},
		{"rootfs.driver", c.Rootfs.Driver, []string{"auto", "btrfs", "overlay", "vfs"}},
	}
	if _, err := launch.ParseVMM(c.VM.VMM); err != nil {
		return fmt.Errorf("config %s: vm.vmm %w", c.path, err)
	}
	if _, err := confine.ParseMode(c.VM.Sandbox); err != nil {
		return fmt.Errorf("config %s: vm.sandbox: %w", c.path, err)
	}
	if _, err := launch.ParseNetworkMode(c.Network.Mode); err != nil {
		return fmt.Errorf("config %s: network.mode %w", c.path, err)
	}
	if err := c.checkWorkspaceNetworks(); err != nil {
		return err
	}
	for _, ch := range checks {
		if err := oneOf(ch.key, ch.v, ch.allowed...); err != nil {
			return fmt.Errorf("config %s: %w", c.path, err)
		}
	}
	if c.VM.Mem < 0 || c.VM.CPUs < 0 {
		return fmt.Errorf("config %s: vm.mem and vm.cpus must be positive", c.path)
	}
	// A bad size used to become the 64 GiB default without a word.
	for _, d := range []struct{ key, v string }{{"disks.nix_size", c.Disks.NixSize}, {"disks.containers_size", c.Disks.ContainersSize}} {
		if d.v == "" {
			continue
		}
		if _, err := disks.ParseSize(d.v); err != nil {
			// ParseSize's message is `size "X": want …`; name the key instead.
			return fmt.Errorf("config %s: %s%s", c.path, d.key, strings.TrimPrefix(err.Error(), "size"))
		}
	}
	if _, err := ParseIdleTimeout(c.Live.IdleTimeout); err != nil {
		return fmt.Errorf("config %s: live.idle_timeout: %w", c.path, err)
	}
	if c.Agentbox.Mounts != nil {
		for _, m := range *c.Agentbox.Mounts {
			if err := checkToolMount(m); err != nil {
				return fmt.Errorf("config %s: %w", c.path, err)
			}
		}
	}
	return c.checkStateLocation()
}

// keyError names the file and key for an error about a value that came
// from the config file (fromFile): the parsers it shares with the flags
// say `--volume "x": why`, naming a flag the user never typed. key is as
// the file spells it: "[network] publish", or "volumes" at the top level.
// An error about a flag's value is returned as it is.
func (c *Config) keyError(fromFile bool, key, flag string, err error) error {
	if !fromFile {
		return err
	}
	return &configKeyError{file: c.file(), key: key, flag: flag, err: err}
}

// file names the config file in messages ("config" for one not read from
// NetworkMode is the config file's network mode (validated when the
// file was read), for doctor.
func (c *Config) NetworkMode() launch.NetworkMode {
	m, err := launch.ParseNetworkMode(c.Network.Mode)
	if err != nil {
		return launch.NetworkEgress
	}
	return m
}

// a file, as in tests).
func (c *Config) file() string {
	if c.path == "" {
		return "config"
	}
	return c.path
}

type configKeyError struct {
	file, key, flag string
	err             error
}

func (e *configKeyError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.file, e.key, strings.TrimPrefix(e.err.Error(), e.flag+" "))
}

func (e *configKeyError) Unwrap() error { return e.err }

// checkStateLocation refuses a relative [state] location: it would name a
// different directory from every working directory. "~/" is the one
// relative form, resolved against HOME.
func (c *Config) checkStateLocation() error {
	loc := c.State.Location
	if loc == "" || filepath.IsAbs(loc) || strings.HasPrefix(loc, "~/") {
		return nil
	}
	file := c.path
	if file == "" {
		file = "(no file)"
	}
	return fmt.Errorf("config %s: state.location %q: want an absolute path or one starting with ~/", file, loc)
}

// SizeOr is the disk size s names, or the default size.
func SizeOr(s string) int64 {
	if n, err := disks.ParseSize(s); err == nil {
		return n
	}
	return disks.DefaultSize
}

package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Config is $XDG_CONFIG_HOME/loftd/loftd.toml. Every key is documented in
// docs/configuration.md; flags override it.
type Config struct {
	State   StateConfig   `toml:"state"`
	VM      VMConfig      `toml:"vm"`
	Image   ImageConfig   `toml:"image"`
	Rootfs  RootfsConfig  `toml:"rootfs"`
	Guest   GuestConfig   `toml:"guest"`
	Network NetworkConfig `toml:"network"`
	Env     EnvConfig     `toml:"env"`
	Disks   DisksConfig   `toml:"disks"`
	Volumes []string      `toml:"volumes"`

	path string // where it was read from ("" when no file)
}

type StateConfig struct {
	Location string `toml:"location"`
}

type VMConfig struct {
	Mem  int    `toml:"mem"`  // GiB
	CPUs int    `toml:"cpus"` // vCPUs
	VMM  string `toml:"vmm"`
}

type ImageConfig struct {
	Default string `toml:"default"`
	Pull    string `toml:"pull"` // missing, always, never
}

type RootfsConfig struct {
	Backend string `toml:"backend"`
	Driver  string `toml:"driver"` // containers/storage graph driver: auto, btrfs, overlay, vfs
}

type GuestConfig struct {
	Init string `toml:"init"`
}

type NetworkConfig struct {
	Mode    string   `toml:"mode"` // passt or tsi
	Publish []string `toml:"publish"`
}

type EnvConfig struct {
	Pass []string `toml:"pass"`
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
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("config: neither XDG_CONFIG_HOME nor HOME is set")
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
	return cfg, cfg.validate()
}

func (c *Config) validate() error {
	checks := []struct {
		key, v  string
		allowed []string
	}{
		{"vm.vmm", c.VM.VMM, []string{"auto", "krun", "qemu"}},
		{"image.pull", c.Image.Pull, []string{"missing", "always", "never"}},
		{"rootfs.backend", c.Rootfs.Backend, []string{"auto", "btrfs-snapshot", "overlay", "fuse-overlay"}},
		{"rootfs.driver", c.Rootfs.Driver, []string{"auto", "btrfs", "overlay", "vfs"}},
		{"network.mode", c.Network.Mode, []string{"passt", "tsi"}},
	}
	for _, ch := range checks {
		if err := oneOf(ch.key, ch.v, ch.allowed...); err != nil {
			return fmt.Errorf("config %s: %w", c.path, err)
		}
	}
	if c.VM.Mem < 0 || c.VM.CPUs < 0 {
		return fmt.Errorf("config %s: vm.mem and vm.cpus must be positive", c.path)
	}
	return nil
}

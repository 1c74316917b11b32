package session

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/loftd/loftd/host/state"
)

// StateDir picks the state directory: [state] location, else
// $XDG_STATE_HOME/loftd, else ~/.local/state/loftd.
func StateDir(cfg *Config, getenv func(string) string) (string, error) {
	if cfg.State.Location != "" {
		if err := cfg.checkStateLocation(); err != nil {
			return "", err
		}
		return expandHome(cfg.State.Location, getenv), nil
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "loftd"), nil
	}
	home := homeDir(getenv)
	if home == "" {
		return "", fmt.Errorf("state directory: neither XDG_STATE_HOME nor HOME is set (set one, or [state] location in the config)")
	}
	return filepath.Join(home, ".local", "state", "loftd"), nil
}

func expandHome(p string, getenv func(string) string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return filepath.Join(homeDir(getenv), rest)
	}
	return p
}

// ReadConfig reads the config file the environment names (or the default
// one; none is no error).
func ReadConfig(e IO) (*Config, error) {
	path, err := ConfigPath(e.Getenv)
	if err != nil {
		return nil, err
	}
	return LoadConfig(path)
}

// OpenState makes the state directory cfg and the environment name, and
// opens it.
func OpenState(e IO, cfg *Config) (state.State, error) {
	dir, err := StateDir(cfg, e.Getenv)
	if err != nil {
		return state.State{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return state.State{}, fmt.Errorf("create state directory: %w", err)
	}
	return state.State{Dir: dir}, nil
}

package session

import (
	"fmt"
	"path/filepath"
	"strings"
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
	home := getenv("HOME")
	if home == "" {
		return "", fmt.Errorf("state directory: neither XDG_STATE_HOME nor HOME is set (set one, or [state] location in the config)")
	}
	return filepath.Join(home, ".local", "state", "loftd"), nil
}

func expandHome(p string, getenv func(string) string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return filepath.Join(getenv("HOME"), rest)
	}
	return p
}

package session

import (
	"fmt"
	"path/filepath"

	"github.com/loftd/loftd/egress"
	"github.com/loftd/loftd/helper"
	"github.com/loftd/loftd/launch"
)

// parseEgress reads the egress opt-ins, the config's first: each --allow
// must parse (egress.Rules.Add, the netstack's own parser), and they need
// the egress network, the only one that enforces them.
func (o *Options) parseEgress(cfg *Config, r *Flags) error {
	o.AllowHost = cfg.Network.AllowHost || r.allowHost
	var rules egress.Rules
	for i, a := range append(append([]string{}, cfg.Network.Allow...), r.allow...) {
		if err := rules.Add(a); err != nil {
			return cfg.keyError(i < len(cfg.Network.Allow), "[network] allow", "--allow", fmt.Errorf("--allow %w", err))
		}
		o.Allow = append(o.Allow, a)
	}
	if (len(o.Allow) > 0 || o.AllowHost) && o.Network != launch.NetworkEgress {
		return fmt.Errorf("--allow and --allow-host (or [network] allow, allow_host) are the egress network's; --network %s enforces no policy: drop one of them", o.Network)
	}
	return nil
}

// planEgress is the plan's network for mode egress: loftd's netstack, run
// by this same binary, with the policy's opt-ins.
func planEgress(o *Options) (launch.Network, error) {
	exe, err := executable()
	if err != nil {
		return launch.Network{}, fmt.Errorf("guest network: loftd's own path for its netstack: %w", err)
	}
	n := launch.Network{Mode: launch.NetworkEgress, Publish: o.Publish,
		Egress: &launch.Egress{Allow: o.Allow, AllowHost: o.AllowHost, Exe: exe}}
	return n, checkHostPorts(o.Publish)
}

// reportDenials prints the egress policy's one-line summary on stderr when
// it blocked something (--debug logged each as it happened).
func (s *session) reportDenials() {
	l, err := helper.ReadDenials(s.taskDir)
	if err != nil {
		s.io.Log.Warn("read the egress denials", "err", err)
		return
	}
	if sum := l.Summary(); sum != "" {
		fmt.Fprintln(s.io.Stderr, sum)
	}
}

// checkWorkspaceNetworks refuses a [network.workspaces."PATH"] entry whose
// path is not absolute or whose allow does not parse, when the file is read.
func (c *Config) checkWorkspaceNetworks() error {
	for path, w := range c.Network.Workspaces {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("config %s: network.workspaces.%q: want the workspace's absolute path", c.path, path)
		}
		var rules egress.Rules
		for _, a := range w.Allow {
			if err := rules.Add(a); err != nil {
				return fmt.Errorf("config %s: network.workspaces.%q.allow: %w", c.path, path, err)
			}
		}
	}
	return nil
}

// workspaceNetwork is the config's entry for the workspace at src (the
// resolved project directory), matched by path with links resolved.
func (c *Config) workspaceNetwork(src string) (WorkspaceNetwork, bool) {
	for path, w := range c.Network.Workspaces {
		p := filepath.Clean(path)
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if p == src {
			return w, true
		}
	}
	return WorkspaceNetwork{}, false
}

// addWorkspaceEgress adds the workspace's own opt-ins to o (once the
// session knows its workspace); they need the egress network as the
// flags do.
func (o *Options) addWorkspaceEgress(cfg *Config, src string) error {
	w, ok := cfg.workspaceNetwork(src)
	if !ok || (len(w.Allow) == 0 && !w.AllowHost) {
		return nil
	}
	if o.Network != launch.NetworkEgress {
		return fmt.Errorf("config %s: network.workspaces.%q: allow and allow_host are the egress network's; --network %s enforces no policy: drop one of them", cfg.file(), src, o.Network)
	}
	o.Allow = append(o.Allow, w.Allow...)
	o.AllowHost = o.AllowHost || w.AllowHost
	return nil
}

package session

import (
	"fmt"

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

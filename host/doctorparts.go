package host

import (
	"fmt"
	"strings"

	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/launch"
)

// checkGuestInit says which guest init a session injects, and from where.
func checkGuestInit(spec string) check {
	c := check{name: "guest init", level: "ok"}
	if spec == "image" {
		c.detail = "the image's own (--guest-init image)"
		return c
	}
	f, err := session.FindGuestInit(spec)
	if err != nil {
		c.level, c.detail, c.fix = "fail", err.Error(), session.GuestInitPart.Hint
		return c
	}
	c.detail = f.String()
	return c
}

// checkNetwork names the guest network sessions get (the config's mode)
// and what it lets the guest reach: since the egress policy became the
// default, the host's loopback, private ranges and link-local addresses
// need an opt-in, which doctor says once so the change is not a surprise.
func checkNetwork(cfg *session.Config) check {
	c := check{name: "network", level: "ok"}
	switch mode := cfg.NetworkMode(); mode {
	case launch.NetworkEgress:
		c.detail = "egress (the default since issue 20): loftd's policy network; public addresses only, DNS through loftd, no other UDP"
		var opt []string
		if cfg.Network.AllowHost {
			opt = append(opt, "allow_host")
		}
		opt = append(opt, cfg.Network.Allow...)
		if len(opt) > 0 {
			c.detail += "; config allows " + strings.Join(opt, ", ")
		} else {
			c.detail += "; the host's loopback, private ranges and link-local addresses are refused"
			c.fix = "open them per run with --allow-host or --allow CIDR (or [network] allow_host, allow); --network passt is the old unfiltered network"
		}
	case launch.NetworkPasst:
		c.detail = "passt, unfiltered (configured): the guest reaches the host's loopback, the LAN and link-local addresses"
	default:
		c.detail = mode.String()
	}
	return c
}

// checkPasst: passt is the guest network of --network passt, so a missing
// one fails every session that asks for it when it is configured. It
// reports the passt a session would use (session.FindPasst), its release and the
// options loftd uses, and warns when it cannot publish TCP (Debian 12's
// 0.0~git20230309, which lacks --map-host-loopback and the rest of 2024-08).
func checkPasst(mode launch.NetworkMode) check {
	c := check{name: "passt", level: "ok"}
	f, feat, err := session.FindPasst("")
	if err != nil {
		c.level, c.detail, c.fix = "fail", err.Error(), session.PasstPart.Hint+"; the default network (egress) does not need it"
		if mode != launch.NetworkPasst {
			c.level = "warn"
		}
		return c
	}
	c.detail = f.String() + "; " + feat.String()
	switch {
	case !feat.FD:
		c.level, c.fix = "fail", "this passt has no --fd (too old): "+session.PasstPart.Hint
	case !feat.MapHostLoopback:
		c.level = "warn"
		c.detail += "; it cannot publish TCP ports (-p PORT:PORT/tcp is refused), UDP and outbound work"
		c.fix = session.PasstTCPHint
	}
	return c
}

// checkVMSize reports the default VM size and what bounds it: the host, a
// cgroup limit (a container or pod) or the pod's Downward API variables.
func checkVMSize(getenv func(string) string) check {
	r, err := session.ReadResources(getenv)
	if err != nil {
		return check{name: "vm size", level: "fail", detail: err.Error(), fix: "set it from the pod's resourceFieldRef (limits.memory in bytes, limits.cpu with divisor 1), or unset it"}
	}
	return check{name: "vm size", level: "ok", detail: fmt.Sprintf("default %d vCPUs (of %d, from %s) and %d GiB (80%% of %.1f GiB, from %s)",
		session.DefaultCPUs(r.CPUs), r.CPUs, r.CPUsFrom, session.DefaultMem(r.MemBytes)>>10, float64(r.MemBytes)/(1<<30), r.MemFrom)}
}

package host

import (
	"fmt"

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

// checkPasst: passt is the default guest network (--network passt), so a
// missing one fails every session that does not ask for --network none. It
// reports the passt a session would use (session.FindPasst), its release and the
// options loftd uses, and warns when it cannot publish TCP (Debian 12's
// 0.0~git20230309, which lacks --map-host-loopback and the rest of 2024-08).
func checkPasst(mode launch.NetworkMode) check {
	c := check{name: "passt", level: "ok"}
	f, feat, err := session.FindPasst("")
	if err != nil {
		c.level, c.detail, c.fix = "fail", err.Error(), session.PasstPart.Hint+", or run sessions with --network none"
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

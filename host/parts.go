package host

import (
	"errors"
	"fmt"
	"os"

	"github.com/loftd/loftd/helper/passt"
	"github.com/loftd/loftd/internal/parts"
	"github.com/loftd/loftd/launch"
)

// guestInitPart is where the static guest init is looked for, after
// --guest-init (or [guest] init): ../libexec/loftd next to loftd (`make
// install`), loftd's own directory (a source build's bin/), the system's
// libexec directories, then $XDG_DATA_HOME/loftd/libexec.
var guestInitPart = parts.Part{
	Name: "guest init", Flag: "--guest-init", Files: []string{"loftd-guest-init"},
	Beside:  []string{"../libexec/loftd", "."},
	System:  parts.InDirs("/usr/libexec/loftd", "/usr/local/libexec/loftd", "/usr/lib/loftd"),
	DataDir: "libexec",
	Hint:    "build it with 'make build', install it with 'make install', or pass --guest-init PATH",
}

// passtPart is where passt, the user-mode network of the guest's
// virtio-net, is looked for. loftd's own libexec directories come before
// $PATH: scripts/fetch-passt installs there a passt that carries TCP into
// the guest, which the distribution's may not (Debian 12's); findPasst
// prefers such a passt wherever it is in the order.
var passtPart = parts.Part{
	Name: "passt", Env: "LOFTD_PASST", Files: []string{"passt"},
	Beside: []string{"../libexec/loftd"},
	System: func(name string) (string, bool) {
		if p, ok := parts.InDirs(passtSystemDirs...)(name); ok {
			return p, true
		}
		return parts.InPath()(name)
	},
	DataDir: "libexec",
	Hint:    "install passt (apt-get install passt, dnf install passt)",
}

// passtSystemDirs are where scripts/fetch-passt (as root) and packagers put
// loftd's own passt.
var passtSystemDirs = []string{"/usr/local/libexec/loftd", "/usr/libexec/loftd"}

// passtTCPHint is the fix for a passt that cannot publish TCP.
const passtTCPHint = "run scripts/fetch-passt from loftd's source as root (it builds Debian 13's passt into /usr/local/libexec/loftd, where loftd finds it), or set LOFTD_PASST to a passt of 2024-08 or later"

// partLocator finds parts from loftd's own path (executable(), which
// reads _LOFTD_EXE inside the keep-id namespace).
var partLocator = parts.Locator{Getenv: os.Getenv, Executable: executable}

// checkGuestInit says which guest init a session injects, and from where.
func checkGuestInit(spec string) check {
	c := check{name: "guest init", level: "ok"}
	if spec == "image" {
		c.detail = "the image's own (--guest-init image)"
		return c
	}
	f, err := partLocator.Find(guestInitPart, spec)
	if err != nil {
		c.level, c.detail, c.fix = "fail", err.Error(), guestInitPart.Hint
		return c
	}
	c.detail = f.String()
	return c
}

// checkPasst: passt is the default guest network (--network passt), so a
// missing one fails every session that does not ask for --network none. It
// reports the passt a session would use (findPasst), its release and the
// options loftd uses, and warns when it cannot publish TCP (Debian 12's
// 0.0~git20230309, which lacks --map-host-loopback and the rest of 2024-08).
func checkPasst(mode launch.NetworkMode) check {
	c := check{name: "passt", level: "ok"}
	f, feat, err := findPasst("")
	if err != nil {
		c.level, c.detail, c.fix = "fail", err.Error(), passtPart.Hint+", or run sessions with --network none"
		if mode != launch.NetworkPasst {
			c.level = "warn"
		}
		return c
	}
	c.detail = f.String() + "; " + feat.String()
	switch {
	case !feat.FD:
		c.level, c.fix = "fail", "this passt has no --fd (too old): "+passtPart.Hint
	case !feat.MapHostLoopback:
		c.level = "warn"
		c.detail += "; it cannot publish TCP ports (-p PORT:PORT/tcp is refused), UDP and outbound work"
		c.fix = passtTCPHint
	}
	return c
}

// findPasst is the passt a session uses, with its features: the override
// (LOFTD_PASST) as given; else, in the search order, the first passt that
// carries TCP into the guest (--map-host-loopback, 2024-08 and later), else
// the first that answers its --help. cacheDir keeps the probes ("" for
// none).
func findPasst(cacheDir string) (parts.Found, passt.Features, error) {
	var all []parts.Found
	if f, ok, err := partLocator.Override(passtPart, ""); err != nil {
		return parts.Found{}, passt.Features{}, err
	} else if ok {
		all = []parts.Found{f}
	} else if all = partLocator.Candidates(passtPart); len(all) == 0 {
		_, err := partLocator.Find(passtPart, "")
		return parts.Found{}, passt.Features{}, err
	}
	var first *parts.Found
	var firstFeat passt.Features
	var errs []error
	for _, f := range all {
		feat, err := passt.Probe(f.Path, cacheDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		if feat.MapHostLoopback {
			return f, feat, nil
		}
		if first == nil {
			first, firstFeat = &f, feat
		}
	}
	if first == nil {
		return parts.Found{}, passt.Features{}, errors.Join(errs...)
	}
	return *first, firstFeat, nil
}

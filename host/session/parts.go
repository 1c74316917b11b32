package session

import (
	"errors"
	"fmt"
	"os"

	"github.com/loftd/loftd/helper/passt"
	"github.com/loftd/loftd/internal/parts"
)

// GuestInitPart is where the static guest init is looked for, after
// --guest-init (or [guest] init): ../libexec/loftd next to loftd (`make
// install`), loftd's own directory (a source build's bin/), the system's
// libexec directories, then $XDG_DATA_HOME/loftd/libexec.
var GuestInitPart = parts.Part{
	Name: "guest init", Flag: "--guest-init", Files: []string{"loftd-guest-init"},
	Beside:  []string{"../libexec/loftd", "."},
	System:  parts.InDirs("/usr/libexec/loftd", "/usr/local/libexec/loftd", "/usr/lib/loftd"),
	DataDir: "libexec",
	Hint:    "build it with 'make build', install it with 'make install', or pass --guest-init PATH",
}

// PasstPart is where passt, the user-mode network of the guest's
// virtio-net, is looked for. loftd's own libexec directories come before
// $PATH: scripts/fetch-passt installs there a passt that carries TCP into
// the guest, which the distribution's may not (Debian 12's); FindPasst
// prefers such a passt wherever it is in the order.
var PasstPart = parts.Part{
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

// PasstTCPHint is the fix for a passt that cannot publish TCP.
const PasstTCPHint = "run scripts/fetch-passt from loftd's source as root (it builds Debian 13's passt into /usr/local/libexec/loftd, where loftd finds it), or set LOFTD_PASST to a passt of 2024-08 or later"

// partLocator finds parts from loftd's own path (executable(), which
// reads _LOFTD_EXE inside the keep-id namespace).
var partLocator = parts.Locator{Getenv: os.Getenv, Executable: executable}

// FindGuestInit is the guest init a session injects for spec (--guest-init).
func FindGuestInit(spec string) (parts.Found, error) {
	return partLocator.Find(GuestInitPart, spec)
}

// FindPasst is the passt a session uses, with its features: the override
// (LOFTD_PASST) as given; else, in the search order, the first passt that
// carries TCP into the guest (--map-host-loopback, 2024-08 and later), else
// the first that answers its --help. cacheDir keeps the probes ("" for
// none).
func FindPasst(cacheDir string) (parts.Found, passt.Features, error) {
	var all []parts.Found
	if f, ok, err := partLocator.Override(PasstPart, ""); err != nil {
		return parts.Found{}, passt.Features{}, err
	} else if ok {
		all = []parts.Found{f}
	} else if all = partLocator.Candidates(PasstPart); len(all) == 0 {
		_, err := partLocator.Find(PasstPart, "")
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

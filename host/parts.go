package host

import (
	"os"

	"github.com/loftd/loftd/internal/parts"
	"github.com/loftd/loftd/vmm/passt"
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

// passtPart is where passt, the user-mode network of libkrun's virtio-net,
// is looked for.
var passtPart = parts.Part{
	Name: "passt", Files: []string{"passt"},
	Beside:  []string{"../libexec/loftd"},
	System:  parts.InPath(),
	DataDir: "libexec",
	Hint:    "install passt (apt-get install passt, dnf install passt)",
}

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
// reports the release and the options loftd uses: Debian 12's
// 0.0~git20230309 lacks --map-host-loopback and the rest of 2024-08, which
// loftd does without (vmm/passt).
func checkPasst(mode string) check {
	c := check{name: "passt", level: "ok"}
	f, err := partLocator.Find(passtPart, "")
	if err != nil {
		c.level, c.detail, c.fix = "fail", err.Error(), passtPart.Hint+", or run sessions with --network none"
		if mode == "none" || mode == "tsi" {
			c.level = "warn"
		}
		return c
	}
	feat, err := passt.Probe(f.Path, "")
	if err != nil {
		c.level, c.detail, c.fix = "fail", f.String()+": "+err.Error(), passtPart.Hint
		return c
	}
	c.detail = f.String() + "; " + feat.String()
	if !feat.FD {
		c.level, c.fix = "fail", "this passt has no --fd (too old): "+passtPart.Hint
	}
	return c
}

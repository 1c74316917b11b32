package host

import (
	"os"

	"github.com/loftd/loftd/internal/parts"
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

// checkPasst: passt is only needed for libkrun's passt network, so its
// absence is a warning.
func checkPasst() check {
	c := check{name: "passt", level: "ok"}
	f, err := partLocator.Find(passtPart, "")
	if err != nil {
		c.level, c.detail, c.fix = "warn", err.Error(), passtPart.Hint
		return c
	}
	c.detail = f.String()
	return c
}

package guestinit

import "fmt"

// sysbox runs system containers (Docker or systemd inside a container)
// without privileges. Debian does not package it: an image that ships
// all three binaries gets the two daemons started as envbox starts them,
// and sysbox-runc registered as a Podman runtime; any other image, nothing.
var sysboxBins = []string{"sysbox-mgr", "sysbox-fs", "sysbox-runc"}

// sysboxRuntime is the guest path of sysbox-runc when the image ships all
// of sysbox, else "".
func (d *diskPrep) sysboxRuntime() string {
	for _, b := range sysboxBins {
		if d.lookBin(b) == "" {
			return ""
		}
	}
	return d.lookBin("sysbox-runc")
}

func (d *diskPrep) sysboxSteps() []Step {
	if d.sysboxRuntime() == "" {
		return nil
	}
	var steps []Step
	for _, b := range sysboxBins[:2] {
		bin := d.lookBin(b)
		log := "/run/loftd/" + b + ".log"
		steps = append(steps, Step{Desc: bin + " & (log " + log + ")", Do: func() error {
			// Their state directories, as sysbox's packaging makes them.
			for _, dir := range []string{"/var/lib/sysbox", "/var/lib/sysboxfs"} {
				if err := d.mkdirOwned(dir, 0o700, 0, 0); err != nil {
					return fmt.Errorf("start %s: %w", b, err)
				}
			}
			_, err := d.spawn([]string{d.path(bin)}, d.userEnvRoot(), nil, log)
			return err
		}})
	}
	return steps
}

// userEnvRoot is the environment of the daemons the init starts as root.
func (d *diskPrep) userEnvRoot() []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
}

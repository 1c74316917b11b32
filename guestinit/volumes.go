package guestinit

import (
	"fmt"
	"os"

	"github.com/loftd/loftd/contract"
	"golang.org/x/sys/unix"
)

// volumeSteps mount the extra virtiofs shares of LOFTD_VOLUMES (-v and
// agentbox's live tool-state mounts), each at its target, read-only when
// asked (the host enforces it too). The overlaid tool state comes later:
// toolStateSteps.
func (e *enter) volumeSteps() []Step {
	vols, err := contract.ParseVolumes(e.cfg.Env)
	if err != nil {
		return []Step{{Desc: "read " + contract.EnvVolumes, Do: func() error { return err }}}
	}
	var steps []Step
	for _, v := range vols {
		if v.Overlay {
			continue // toolStateSteps, once the nix disk is mounted
		}
		flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
		desc := "mount -t virtiofs"
		if v.ReadOnly {
			flags |= unix.MS_RDONLY
			desc += " -o ro"
		}
		steps = append(steps, Step{Desc: fmt.Sprintf("%s %s %s", desc, v.Tag, v.Target), Do: func() error {
			if err := e.sys.MkdirAll(v.Target, 0o755); err != nil {
				return err
			}
			if err := e.sys.Mount(v.Tag, v.Target, "virtiofs", flags, ""); err != nil {
				return &os.PathError{Op: "mount virtiofs " + v.Tag, Path: v.Target, Err: err}
			}
			return nil
		}})
	}
	return steps
}

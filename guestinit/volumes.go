package guestinit

import (
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
		op := mountOp{FSType: "virtiofs", Source: v.Tag, Target: v.Target, Flags: unix.MS_NOSUID | unix.MS_NODEV}
		if v.ReadOnly {
			op.Flags |= unix.MS_RDONLY
		}
		steps = append(steps, Step{Desc: op.String(), Do: func() error {
			if err := e.sys.MkdirAll(v.Target, 0o755); err != nil {
				return err
			}
			return op.do(e.sys.Mount)
		}})
	}
	return steps
}

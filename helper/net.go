package helper

import (
	"os"
	"path/filepath"
	"time"

	"github.com/loftd/loftd/helper/passt"
	"github.com/loftd/loftd/launch"
)

// startPasst starts the plan's passt (network "passt" without a socket
// path) and returns it with the VM's end of its socketpair; nil, nil when
// the plan has no passt to start. The caller stops passt when the VM ends;
// passt also ends by itself once every copy of the VM's end is closed.
func (h *Helper) startPasst(p *launch.Plan) (*passt.Proc, *os.File, error) {
	n := p.Network
	if n.Mode != launch.NetworkPasst || n.Passt == nil {
		return nil, nil, nil
	}
	// The parent probed this passt (its features are in the plan): it is
	// never asked again here.
	f := n.Passt.Features
	proc, vmEnd, err := passt.Start(passt.Config{
		Path: n.Passt.Path, Publish: n.Publish, Features: f,
		LogPath: filepath.Join(h.TaskDir, "passt.log"), Log: h.Log,
	})
	if err != nil {
		return nil, nil, err
	}
	h.Log.Debug("passt started", "pid", proc.Pid(), "features", f.String())
	return proc, vmEnd, nil
}

// stopPasst ends passt after the VM (nil: nothing to stop).
func (h *Helper) stopPasst(proc *passt.Proc) {
	if proc == nil {
		return
	}
	if err := proc.Stop(time.Second); err != nil {
		h.Log.Warn("stop passt", "err", err)
	}
}

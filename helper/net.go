package helper

import (
	"os"
	"path/filepath"
	"time"

	"github.com/loftd/loftd/helper/passt"
	"github.com/loftd/loftd/launch"
)

// netProc is the user-mode network's process (passt, or loftd's
// netstack): internal/child's.
type netProc interface {
	Pid() int
	Stop(grace time.Duration) error
}

// startNet starts the plan's user-mode network, passt (network "passt"
// without a socket path) or loftd's netstack (network "egress"), and
// returns it with the VM's end of its socketpair; nil, nil when the plan
// has none to start. The caller stops it when the VM ends; both also end
// by themselves once every copy of the VM's end is closed.
func (h *Helper) startNet(p *launch.Plan) (netProc, *os.File, error) {
	if p.Network.Mode == launch.NetworkEgress {
		proc, vmEnd, err := h.startNetstack(p)
		if err != nil {
			return nil, nil, err
		}
		return proc, vmEnd, nil
	}
	proc, vmEnd, err := h.startPasst(p)
	if err != nil || proc == nil {
		return nil, nil, err
	}
	return proc, vmEnd, nil
}

// stopNet ends the network after the VM (nil: nothing to stop).
func (h *Helper) stopNet(proc netProc) {
	if proc == nil {
		return
	}
	if err := proc.Stop(time.Second); err != nil {
		h.Log.Warn("stop network", "err", err)
	}
}

// startPasst starts the plan's passt (network "passt" without a socket
// path) and returns it with the VM's end of its socketpair; nil, nil when
// the plan has no passt to start.
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

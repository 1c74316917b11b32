package helper

import (
	"github.com/loftd/loftd/helper/live"
)

// startLive creates the VM's tunnel and control sockets (helper/live)
// before the boot, and before anything confines this process, when the
// host gave the task the workspace's keys; nil without them.
func (h *Helper) startLive() (*live.Mux, live.Keys, error) {
	keys, ok, err := live.ReadKeys(h.TaskDir)
	if err != nil || !ok {
		return nil, keys, err
	}
	m, err := live.Listen(h.TaskDir, h.Log)
	if err != nil {
		return nil, keys, err
	}
	return m, keys, nil
}

package contract

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// EnvVolumes lists the extra virtiofs shares the guest mounts (-v and
// agentbox's tool-state mounts), as a JSON array of Volume.
const EnvVolumes = "LOFTD_VOLUMES"

// VolumeTagPrefix + an index is the virtiofs tag of an extra share.
const VolumeTagPrefix = "loftd-vol"

// Volume is one extra share: the guest mounts virtiofs Tag at Target,
// read-only when ReadOnly. Overlay (agentbox's tool state, read-only
// shares only): the guest mounts the share read-only out of sight and
// shows at Target a writable overlay of it whose upper layer is kept on
// the workspace's nix disk, so the guest's changes persist with the
// workspace and never reach the host's files.
type Volume struct {
	Tag      string `json:"tag"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"ro,omitempty"`
	Overlay  bool   `json:"overlay,omitempty"`
}

// VolumesEnv renders vols as the EnvVolumes entry ("" for none).
func VolumesEnv(vols []Volume) string {
	if len(vols) == 0 {
		return ""
	}
	data, _ := json.Marshal(vols) // plain strings and bools: cannot fail
	return EnvVolumes + "=" + string(data)
}

// ParseVolumes reads the EnvVolumes entry of env (none: nil) and checks
// each target is an absolute, clean path other than /.
func ParseVolumes(env []string) ([]Volume, error) {
	var vols []Volume
	for _, kv := range env {
		value, ok := strings.CutPrefix(kv, EnvVolumes+"=")
		if !ok {
			continue
		}
		if err := json.Unmarshal([]byte(value), &vols); err != nil {
			return nil, fmt.Errorf("contract: %s: %w", EnvVolumes, err)
		}
	}
	for _, v := range vols {
		if v.Tag == "" || !path.IsAbs(v.Target) || path.Clean(v.Target) != v.Target || v.Target == "/" {
			return nil, fmt.Errorf("contract: %s: %+v needs a tag and an absolute, clean target other than /", EnvVolumes, v)
		}
		if v.Overlay && !v.ReadOnly {
			return nil, fmt.Errorf("contract: %s: %+v: an overlay's share must be read-only", EnvVolumes, v)
		}
	}
	return vols, nil
}

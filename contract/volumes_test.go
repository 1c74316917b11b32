package contract

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseVolumes(t *testing.T) {
	tests := []struct {
		value   string
		want    []Volume
		wantErr string
	}{
		{value: `[{"tag":"loftd-vol0","target":"/home/dev/.claude","ro":true,"overlay":true}]`,
			want: []Volume{{Tag: "loftd-vol0", Target: "/home/dev/.claude", ReadOnly: true, Overlay: true}}},
		{value: `[{"tag":"loftd-vol0","target":"/data"}]`, want: []Volume{{Tag: "loftd-vol0", Target: "/data"}}},
		// The overlay's lower layer is the host's files: never read-write.
		{value: `[{"tag":"loftd-vol0","target":"/home/dev/.claude","overlay":true}]`, wantErr: "an overlay's share must be read-only"},
		{value: `[{"tag":"loftd-vol0","target":"/"}]`, wantErr: "other than /"},
		{value: `[{"tag":"","target":"/d"}]`, wantErr: "needs a tag"},
	}
	for _, tt := range tests {
		got, err := ParseVolumes([]string{EnvVolumes + "=" + tt.value})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseVolumes(%s) = %+v, %v; want an error containing %q", tt.value, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseVolumes(%s) = %+v, %v; want %+v", tt.value, got, err, tt.want)
		}
		if env := VolumesEnv(got); env != EnvVolumes+"="+tt.value {
			t.Errorf("VolumesEnv(%+v) = %s, want the input back", got, env)
		}
	}
}

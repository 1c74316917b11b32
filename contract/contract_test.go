package contract

import (
	"reflect"
	"strings"
	"testing"
)

func TestGuestEnvRoundTrip(t *testing.T) {
	tests := []Guest{
		{Mode: ModeEnter, UID: 1001, GID: 1002, User: "dev", WorkspaceTag: WorkspaceTag, NixDisk: NixDiskID, ContainersDisk: ContainersDiskID, Network: NetworkPasst, Workdir: WorkspaceMount},
		{Mode: ModeEnter, UID: 0, GID: 0, User: "dev", Root: true, Network: NetworkTSI, Profile: true, TTY: true},
		{Mode: ModeEnter, UID: 1001, GID: 1002, User: "dev", Hostname: "myproj", WorkspaceTag: WorkspaceTag, NixDisk: NixDiskID, ContainersDisk: ContainersDiskID, Network: NetworkPasst},
		{Mode: ModeEnter, UID: 0, GID: 0, User: "dev", Root: true, Network: NetworkTSI, Profile: true},
		{Mode: ModeResize, UID: 1000, GID: 1000, User: "dev", ResizeDisk: NixDiskID},
		{Mode: ModeSnapshot, UID: 1000, GID: 1000, User: "dev", ResizeDisk: NixDiskID, SnapshotOp: "restore", SnapshotName: "s1"},
		{Mode: ModeCheck, UID: 1000, GID: 1000, User: "alice"},
		{Mode: ModeEnter, UID: 1000, GID: 1000, User: "dev", TTY: true, Hold: true, Detached: true, IdleTimeout: 600},
		{Mode: ModeEnter, UID: 1000, GID: 1000, User: "dev", Network: NetworkEgress, Trust: true},
	}
	for _, g := range tests {
		env := append(g.Env(), "PATH=/bin", "LOFTD_UNKNOWN=x")
		got, err := Parse(env)
		if err != nil || !reflect.DeepEqual(got, g) {
			t.Errorf("Parse(%q) = %+v, %v, want %+v", env, got, err, g)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	got, err := Parse([]string{"LOFTD_MODE=enter"})
	want := Guest{Mode: ModeEnter, UID: 1000, GID: 1000, User: DefaultUser}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(mode only) = %+v, %v, want %+v", got, err, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		env  []string
		want string
	}{
		{nil, "LOFTD_MODE is not set"},
		{[]string{"LOFTD_MODE=boot"}, `LOFTD_MODE="boot" is unknown`},
		{[]string{"LOFTD_MODE=resize"}, "LOFTD_RESIZE_DISK"},
		{[]string{"LOFTD_MODE=resize", "LOFTD_RESIZE_DISK=sda"}, `got "sda"`},
		{[]string{"LOFTD_MODE=enter", "LOFTD_HOST_UID=-1"}, "LOFTD_HOST_UID"},
		{[]string{"LOFTD_MODE=enter", "LOFTD_HOST_GID=x"}, "LOFTD_HOST_GID"},
		{[]string{"LOFTD_MODE=enter", "LOFTD_NETWORK=slirp"}, "LOFTD_NETWORK"},
		{[]string{"LOFTD_MODE=enter", "LOFTD_USER=a:b"}, "LOFTD_USER"},
		{[]string{"LOFTD_MODE=enter", "LOFTD_HOSTNAME=a b"}, "LOFTD_HOSTNAME"},
		{[]string{"LOFTD_MODE=enter", "LOFTD_HOSTNAME=-x"}, "LOFTD_HOSTNAME"},
		{[]string{"LOFTD_MODE=enter", "LOFTD_HOSTNAME=" + strings.Repeat("a", 65)}, "LOFTD_HOSTNAME"},
		{[]string{"LOFTD_MODE=enter", "LOFTD_WORKDIR=workspace"}, "LOFTD_WORKDIR"},
		{[]string{"LOFTD_MODE=enter", "LOFTD_IDLE_TIMEOUT=-5"}, "LOFTD_IDLE_TIMEOUT"},
		{[]string{"LOFTD_MODE=enter", "LOFTD_IDLE_TIMEOUT=1h"}, "LOFTD_IDLE_TIMEOUT"},
	}
	for _, tt := range tests {
		if _, err := Parse(tt.env); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error = %v, want one containing %q", tt.env, err, tt.want)
		}
	}
}

func TestWinsizeLine(t *testing.T) {
	tests := []struct {
		line       string
		rows, cols uint16
		ok         bool
	}{
		{WinsizeLine(30, 100), 30, 100, true},
		{"winsize 0 0", 0, 0, true},
		{"winsize 30", 0, 0, false},
		{"winsize 70000 1", 0, 0, false},
		{"winsize -1 5", 0, 0, false},
		{CtlAck, 0, 0, false},
	}
	for _, tt := range tests {
		r, c, ok := ParseWinsize(tt.line)
		if r != tt.rows || c != tt.cols || ok != tt.ok {
			t.Errorf("ParseWinsize(%q) = %d, %d, %v, want %d, %d, %v", tt.line, r, c, ok, tt.rows, tt.cols, tt.ok)
		}
	}
}

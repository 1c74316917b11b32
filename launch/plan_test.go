package launch

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fullPlan fills every field, so the golden test pins the whole format.
func fullPlan() *Plan {
	return &Plan{
		Version: Version, VMM: "qemu", Library: "/usr/lib64/libkrun.so.1", KrunfwLibrary: "/usr/lib64/libkrunfw.so.5",
		VCPUs: 4, RAMMiB: 8192, Root: "/s/tasks/t1/rootfs",
		Disks:  []Disk{{ID: "loftd-nix", Path: "/s/w/nix.raw"}, {ID: "loftd-containers", Path: "/s/w/containers.raw", ReadOnly: true}},
		Shares: []Share{{Tag: "loftd-workspace", Path: "/home/u/proj"}, {Tag: "loftd-vol0", Path: "/srv/ro", ReadOnly: true}},
		ShareIDs: &ShareIDs{UIDs: []IDMap{{Guest: 0, Host: 1879048192, Size: 1000}, {Guest: 1000, Host: 0, Size: 1}},
			GIDs: []IDMap{{Guest: 1000, Host: 0, Size: 1}}},
		Network: Network{Mode: "passt", PortMap: []string{"8080:80"}, Socket: "/s/tasks/t1/passt.sock", MAC: "5a:94:ef:e4:0c:ee",
			Passt: "/usr/bin/passt", TCP: []string{"127.0.0.1/8080:80"}, UDP: []string{"5353:53"}},
		Console:    Console{Interactive: true, StdioPorts: true},
		NestedVirt: true, Rlimits: []string{"7=1024:4096"},
		ExecPath: "/.loftd/guest-init", Argv: []string{"enter", "--", "make", "test"},
		Env: []string{"LOFTD_MODE=enter"}, Workdir: "/workspace", StateDir: "/s",
		LogLevel:   "warn",
		VsockPorts: []VsockPort{{Port: 1024, Path: "/s/tasks/t1/status.sock", Listen: true}, {Port: 1025, Path: "/s/tasks/t1/log.sock"}},
		KrunInit:   "/tmp/init.krun",
	}
}

const golden = `{
  "version": 1,
  "vmm": "qemu",
  "library": "/usr/lib64/libkrun.so.1",
  "krunfw_library": "/usr/lib64/libkrunfw.so.5",
  "vcpus": 4,
  "ram_mib": 8192,
  "root": "/s/tasks/t1/rootfs",
  "disks": [
    {
      "id": "loftd-nix",
      "path": "/s/w/nix.raw",
      "read_only": false
    },
    {
      "id": "loftd-containers",
      "path": "/s/w/containers.raw",
      "read_only": true
    }
  ],
  "shares": [
    {
      "tag": "loftd-workspace",
      "path": "/home/u/proj"
    },
    {
      "tag": "loftd-vol0",
      "path": "/srv/ro",
      "read_only": true
    }
  ],
  "share_ids": {
    "uids": [
      {
        "guest": 0,
        "host": 1879048192,
        "size": 1000
      },
      {
        "guest": 1000,
        "host": 0,
        "size": 1
      }
    ],
    "gids": [
      {
        "guest": 1000,
        "host": 0,
        "size": 1
      }
    ]
  },
  "network": {
    "mode": "passt",
    "port_map": [
      "8080:80"
    ],
    "socket": "/s/tasks/t1/passt.sock",
    "mac": "5a:94:ef:e4:0c:ee",
    "passt": "/usr/bin/passt",
    "tcp": [
      "127.0.0.1/8080:80"
    ],
    "udp": [
      "5353:53"
    ]
  },
  "console": {
    "interactive": true,
    "stdio_ports": true
  },
  "nested_virt": true,
  "rlimits": [
    "7=1024:4096"
  ],
  "exec_path": "/.loftd/guest-init",
  "argv": [
    "enter",
    "--",
    "make",
    "test"
  ],
  "env": [
    "LOFTD_MODE=enter"
  ],
  "workdir": "/workspace",
  "state_dir": "/s",
  "log_level": "warn",
  "vsock_ports": [
    {
      "port": 1024,
      "path": "/s/tasks/t1/status.sock",
      "listen": true
    },
    {
      "port": 1025,
      "path": "/s/tasks/t1/log.sock"
    }
  ],
  "krun_init": "/tmp/init.krun"
}
`

func TestPlanGolden(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, fullPlan()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != golden {
		t.Errorf("launch.json drifted from the golden format:\n got: %s\nwant: %s", data, golden)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("launch.json mode = %v, %v; want 0600 (it holds the user's environment)", fi.Mode().Perm(), err)
	}
	got, err := Read(dir)
	if err != nil || !reflect.DeepEqual(got, fullPlan()) {
		t.Errorf("Read(Write(plan)) = %+v, %v; want the plan back", got, err)
	}
}

func TestReadRejects(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"unknown field", `{"version":1,"vmm":"qemu","root":"/r","exec_path":"/i","vcpus":1,"ram_mib":512,"extra":1}`, `unknown field "extra"`},
		{"old version", `{"version":0,"vmm":"qemu","root":"/r","exec_path":"/i","vcpus":1,"ram_mib":512}`, "version 0"},
		{"bad vmm", `{"version":1,"vmm":"xen","root":"/r","exec_path":"/i","vcpus":1,"ram_mib":512}`, `vmm "xen"`},
		{"relative root", `{"version":1,"vmm":"krun","root":"r","exec_path":"/i","vcpus":1,"ram_mib":512}`, "not an absolute path"},
		{"no exec", `{"version":1,"vmm":"krun","root":"/r","vcpus":1,"ram_mib":512}`, "exec_path is empty"},
		{"tiny", `{"version":1,"vmm":"krun","root":"/r","exec_path":"/i","vcpus":0,"ram_mib":512}`, "below the minimum"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(tt.json), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Read() error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

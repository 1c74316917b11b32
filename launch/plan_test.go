package launch

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// fullPlan fills every field, so the golden test pins the whole format.
func fullPlan() *Plan {
	return &Plan{
		Version: Version, VMM: VMMQEMU, Library: "/usr/lib64/libkrun.so.1", KrunfwLibrary: "/usr/lib64/libkrunfw.so.5",
		QEMU: "/usr/bin/qemu-system-x86_64", Virtiofsd: "/usr/libexec/virtiofsd", VirtiofsdFlavor: VirtiofsdRust,
		VCPUs: 4, RAMMiB: 8192, Root: "/s/tasks/t1/rootfs",
		Disks:  []Disk{{ID: "loftd-nix", Path: "/s/w/nix.raw"}, {ID: "loftd-containers", Path: "/s/w/containers.raw", ReadOnly: true}},
		Shares: []Share{{Tag: "loftd-workspace", Path: "/home/u/proj"}, {Tag: "loftd-vol0", Path: "/srv/ro", ReadOnly: true}},
		ShareIDs: &ShareIDs{UIDs: []IDMap{{Guest: 0, Host: 1879048192, Size: 1000}, {Guest: 1000, Host: 0, Size: 1}},
			GIDs: []IDMap{{Guest: 1000, Host: 0, Size: 1}}},
		Network: Network{Mode: NetworkPasst, Socket: "/s/tasks/t1/passt.sock", MAC: "5a:94:ef:e4:0c:ee",
			Publish: []Publish{
				{HostIP: "127.0.0.1", HostFirst: 8080, HostLast: 8080, GuestFirst: 80, GuestLast: 80, Proto: TCP},
				{HostFirst: 8000, HostLast: 8010, GuestFirst: 9000, GuestLast: 9010, Proto: TCP},
				{HostIP: "::1", HostFirst: 5353, HostLast: 5353, GuestFirst: 53, GuestLast: 53, Proto: UDP},
			},
			Passt: &Passt{Path: "/usr/bin/passt", Features: PasstFeatures{Version: "2025_01_21.4f2c8e7", FD: true, MapHostLoopback: true}}},
		Console:    Console{Interactive: true, StdioPorts: true},
		NestedVirt: true, Rlimits: []string{"7=1024:4096"},
		ExecPath: "/.loftd/guest-init", Argv: []string{"enter", "--", "make", "test"},
		Env: []string{"LOFTD_MODE=enter"}, Workdir: "/workspace", CacheDir: "/s/kernels",
		LogLevel:   "warn",
		VsockPorts: []VsockPort{{Port: 1024, Path: "/s/tasks/t1/status.sock", Listen: true}, {Port: 1025, Path: "/s/tasks/t1/log.sock"}},
		KrunInit:   "/tmp/init.krun",
		Sandbox:    "audit",
	}
}

const golden = `{
  "version": 3,
  "vmm": "qemu",
  "library": "/usr/lib64/libkrun.so.1",
  "krunfw_library": "/usr/lib64/libkrunfw.so.5",
  "qemu": "/usr/bin/qemu-system-x86_64",
  "virtiofsd": "/usr/libexec/virtiofsd",
  "virtiofsd_flavor": "rust",
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
    "publish": [
      {
        "host_ip": "127.0.0.1",
        "host_first": 8080,
        "host_last": 8080,
        "guest_first": 80,
        "guest_last": 80,
        "proto": "tcp"
      },
      {
        "host_first": 8000,
        "host_last": 8010,
        "guest_first": 9000,
        "guest_last": 9010,
        "proto": "tcp"
      },
      {
        "host_ip": "::1",
        "host_first": 5353,
        "host_last": 5353,
        "guest_first": 53,
        "guest_last": 53,
        "proto": "udp"
      }
    ],
    "socket": "/s/tasks/t1/passt.sock",
    "mac": "5a:94:ef:e4:0c:ee",
    "passt": {
      "path": "/usr/bin/passt",
      "features": {
        "version": "2025_01_21.4f2c8e7",
        "fd": true,
        "map_host_loopback": true,
        "map_guest_addr": false,
        "dns_host": false
      }
    }
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
  "cache_dir": "/s/kernels",
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
  "krun_init": "/tmp/init.krun",
  "sandbox": "audit"
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

// The plan is the one VM model: it holds publishes as typed values, never
// a backend's syntax for them (passt's -t/-u specs, libkrun's HOST:GUEST
// pairs) nor a backend's flags. Every string in the golden plan is checked.
func TestPlanHasNoBackendSyntax(t *testing.T) {
	var doc any
	if err := json.Unmarshal([]byte(golden), &doc); err != nil {
		t.Fatal(err)
	}
	syntax := regexp.MustCompile(`^-|^(\S+/)?\d+(-\d+)?:\d+(-\d+)?$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if path == "" && (k == "argv" || k == "env") {
					continue // the workload's own words
				}
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case string:
			if syntax.MatchString(v) {
				t.Errorf("plan%s = %q: a backend's syntax (passt spec, libkrun pair or flag)", path, v)
			}
		}
	}
	walk("", doc)
	for _, key := range []string{`"port_map"`, `"tcp":`, `"udp":`} {
		if strings.Contains(golden, key) {
			t.Errorf("plan has %s, a backend's port list", key)
		}
	}
}

func TestReadRejects(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"unknown field", `{"version":3,"vmm":"qemu","root":"/r","exec_path":"/i","vcpus":1,"ram_mib":512,"extra":1}`, `unknown field "extra"`},
		{"old version", `{"version":2,"vmm":"qemu","root":"/r","exec_path":"/i","vcpus":1,"ram_mib":512}`, "version 2"},
		{"bad vmm", `{"version":3,"vmm":"xen","root":"/r","exec_path":"/i","vcpus":1,"ram_mib":512}`, `vmm "xen"`},
		{"relative root", `{"version":3,"vmm":"krun","root":"r","exec_path":"/i","vcpus":1,"ram_mib":512}`, "not an absolute path"},
		{"no exec", `{"version":3,"vmm":"krun","root":"/r","vcpus":1,"ram_mib":512}`, "exec_path is empty"},
		{"too many vCPUs", `{"version":3,"vmm":"qemu","root":"/r","exec_path":"/i","vcpus":256,"ram_mib":512}`, "256 vCPUs: more than the 255"},
		{"auto is no backend", `{"version":3,"vmm":"auto","root":"/r","exec_path":"/i","vcpus":1,"ram_mib":512}`, `vmm "auto"`},
		{"virtiofsd without a flavor", `{"version":3,"vmm":"qemu","root":"/r","exec_path":"/i","vcpus":1,"ram_mib":512,"virtiofsd":"/v"}`, `virtiofsd /v has flavor ""`},
		{"unknown virtiofsd flavor", `{"version":3,"vmm":"qemu","root":"/r","exec_path":"/i","vcpus":1,"ram_mib":512,"virtiofsd":"/v","virtiofsd_flavor":"go"}`, `flavor "go", not rust or c`},
		{"tiny", `{"version":3,"vmm":"krun","root":"/r","exec_path":"/i","vcpus":0,"ram_mib":512}`, "below the minimum"},
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

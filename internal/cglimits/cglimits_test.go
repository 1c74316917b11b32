package cglimits

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// fakeTree writes files under a temporary root and returns it.
func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRead(t *testing.T) {
	tests := []struct {
		name      string
		files     map[string]string
		cgroup    string
		mountinfo string // %s is the fake root
		mem       uint64
		cpus      int
	}{{
		name: "v2 pod: limits on the cgroup, none above",
		files: map[string]string{
			"cg2/kubepods/pod1/memory.max": "2147483648\n", "cg2/kubepods/pod1/cpu.max": "150000 100000\n",
			"cg2/kubepods/memory.max": "max\n", "cg2/kubepods/cpu.max": "max 100000\n",
		},
		cgroup:    "0::/kubepods/pod1\n",
		mountinfo: "30 20 0:26 / %s/cg2 rw,nosuid - cgroup2 cgroup2 rw\n",
		mem:       2 << 30, cpus: 2,
	}, {
		name: "v2: a parent's limit binds the child",
		files: map[string]string{
			"cg2/a/memory.max": "1073741824\n", "cg2/a/b/memory.max": "4294967296\n",
			"cg2/a/cpu.max": "400000 100000\n", "cg2/a/b/cpu.max": "100000 50000\n",
		},
		cgroup:    "0::/a/b\n",
		mountinfo: "30 20 0:26 / %s/cg2 rw - cgroup2 cgroup2 rw\n",
		mem:       1 << 30, cpus: 2,
	}, {
		name: "a container's own cgroup mounted as its root (docker without a cgroup namespace)",
		files: map[string]string{
			"cg2/memory.max": "536870912\n", "cg2/cpu.max": "50000 100000\n",
		},
		cgroup:    "0::/kubepods/pod1\n",
		mountinfo: "30 20 0:26 /kubepods/pod1 %s/cg2 rw - cgroup2 cgroup2 rw\n",
		mem:       512 << 20, cpus: 1,
	}, {
		name: "hybrid v1 (this CI machine's layout)",
		files: map[string]string{
			"mem/process_api/x/memory.limit_in_bytes": "3221225472\n",
			"mem/process_api/memory.limit_in_bytes":   "9223372036854771712\n",
			"mem/memory.limit_in_bytes":               "9223372036854771712\n",
			"cpu/cpu.cfs_quota_us":                    "-1\n", "cpu/cpu.cfs_period_us": "100000\n",
		},
		cgroup: "9:name=systemd:/\n4:memory:/process_api/x\n1:cpu:/\n0::/\n",
		mountinfo: "40 30 0:30 / %[1]s/mem rw - cgroup cgroup rw,memory\n" +
			"41 30 0:31 / %[1]s/cpu rw - cgroup cgroup rw,cpu\n" +
			"42 30 0:32 / %[1]s/uni rw - cgroup2 cgroup2 rw\n",
		mem: 3 << 30, cpus: 0,
	}, {
		name: "v1 cpu,cpuacct joint mount with a quota",
		files: map[string]string{
			"cpu/job/cpu.cfs_quota_us": "250000\n", "cpu/job/cpu.cfs_period_us": "100000\n",
		},
		cgroup:    "3:cpu,cpuacct:/job\n",
		mountinfo: "40 30 0:30 / %s/cpu rw - cgroup cgroup rw,cpu,cpuacct\n",
		mem:       0, cpus: 3,
	}, {
		name:      "a mount of another part of the hierarchy is not ours",
		files:     map[string]string{"cg2/memory.max": "536870912\n"},
		cgroup:    "0::/mine\n",
		mountinfo: "30 20 0:26 /other %s/cg2 rw - cgroup2 cgroup2 rw\n",
	}, {
		name:      "no cgroup mounts: no limits",
		cgroup:    "0::/\n",
		mountinfo: "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n",
	}, {
		name:      "garbage in the files: no limits, no panic",
		files:     map[string]string{"cg2/memory.max": "lots\n", "cg2/cpu.max": "1 2 3\n"},
		cgroup:    "garbage\n0::/\n",
		mountinfo: "broken line\n30 20 0:26 / %s/cg2 rw - cgroup2 cgroup2 rw\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeTree(t, tt.files)
			mounts, err := parseMountinfo(strings.NewReader(fmt.Sprintf(tt.mountinfo, root)))
			if err != nil {
				t.Fatal(err)
			}
			got := read(parseCgroup([]byte(tt.cgroup)), mounts)
			if got.MemBytes != tt.mem || got.CPUs != tt.cpus {
				t.Errorf("limits = %d bytes, %d CPUs (from %q, %q); want %d, %d", got.MemBytes, got.CPUs, got.MemFile, got.CPUFile, tt.mem, tt.cpus)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/end\04`: `/end\04`, `\134x`: `\x`} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRealCgroup puts a process into cgroups the test makes, with a memory
// and a CPU limit, and reads them back through /proc.
func TestRealCgroup(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := Self(); err != nil {
		t.Fatal(err)
	}
	cg, _ := os.ReadFile("/proc/self/cgroup")
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := parseMountinfo(mi)
	mi.Close()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("loftd-test-%d", os.Getpid())
	var dirs []string
	var limitFiles map[string]string
	v1 := func(ctrl string) string {
		for _, m := range mounts {
			if !m.v2 && m.controllers[ctrl] && m.root == "/" {
				return m.point
			}
		}
		return ""
	}
	memRoot, cpuRoot := v1("memory"), v1("cpu")
	switch {
	case memRoot != "" && cpuRoot != "":
		dirs = []string{filepath.Join(memRoot, name), filepath.Join(cpuRoot, name)}
		limitFiles = map[string]string{
			filepath.Join(dirs[0], "memory.limit_in_bytes"): "1610612736",
			filepath.Join(dirs[1], "cpu.cfs_period_us"):     "100000",
			filepath.Join(dirs[1], "cpu.cfs_quota_us"):      "150000",
		}
	default:
		var v2 string
		for _, m := range mounts {
			if m.v2 && m.root == "/" {
				v2 = m.point
			}
		}
		if v2 == "" {
			testenv.Missing(t, "no cgroup hierarchy with the memory and cpu controllers (/proc/self/cgroup: %q)", cg)
		}
		if err := os.WriteFile(filepath.Join(v2, "cgroup.subtree_control"), []byte("+memory +cpu"), 0); err != nil {
			testenv.Missing(t, "cgroup v2 at %s cannot enable memory and cpu: %v", v2, err)
		}
		dirs = []string{filepath.Join(v2, name)}
		limitFiles = map[string]string{
			filepath.Join(dirs[0], "memory.max"): "1610612736",
			filepath.Join(dirs[0], "cpu.max"):    "150000 100000",
		}
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	})
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for f, v := range limitFiles {
		if err := os.WriteFile(f, []byte(v), 0); err != nil {
			t.Fatalf("set %s: %v", f, err)
		}
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			t.Fatalf("move the child into %s: %v", d, err)
		}
	}
	got, err := Of(strconv.Itoa(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if got.MemBytes != 1536<<20 || got.CPUs != 2 {
		t.Errorf("limits of a process in %v = %+v; want 1.5 GiB and 2 CPUs (1.5 rounded up)", dirs, got)
	}
}

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// TestCgroupSizesVM: a loftd started in a cgroup with a memory and a CPU
// limit (a pod's) gives its VM a default size within them, not the host's:
// the guest sees 1 CPU and 80% of 3 GiB, rounded down to 2 GiB.
func TestCgroupSizesVM(t *testing.T) {
	w := newWorld(t)
	name := fmt.Sprintf("loftd-e2e-%d", os.Getpid())
	var procs []string
	limits := map[string]string{}
	switch {
	case isDir("/sys/fs/cgroup/memory") && isDir("/sys/fs/cgroup/cpu"): // v1 (or hybrid)
		mem, cpu := filepath.Join("/sys/fs/cgroup/memory", name), filepath.Join("/sys/fs/cgroup/cpu", name)
		procs = []string{filepath.Join(mem, "cgroup.procs"), filepath.Join(cpu, "cgroup.procs")}
		limits[filepath.Join(mem, "memory.limit_in_bytes")] = strconv.Itoa(3 << 30)
		limits[filepath.Join(cpu, "cpu.cfs_period_us")] = "100000"
		limits[filepath.Join(cpu, "cpu.cfs_quota_us")] = "100000"
	case isFile("/sys/fs/cgroup/cgroup.controllers"): // v2
		if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+memory +cpu"), 0); err != nil {
			testenv.Missing(t, "cgroup v2 cannot enable memory and cpu here: %v", err)
		}
		dir := filepath.Join("/sys/fs/cgroup", name)
		procs = []string{filepath.Join(dir, "cgroup.procs")}
		limits[filepath.Join(dir, "memory.max")] = strconv.Itoa(3 << 30)
		limits[filepath.Join(dir, "cpu.max")] = "100000 100000"
	default:
		testenv.Missing(t, "no cgroup hierarchy with the memory and cpu controllers")
	}
	for _, p := range procs {
		dir := filepath.Dir(p)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(dir) })
	}
	for f, v := range limits {
		if err := os.WriteFile(f, []byte(v), 0); err != nil {
			t.Fatalf("set %s: %v", f, err)
		}
	}
	// The shell moves itself into the cgroups, then becomes loftd, with
	// no --mem or --cpus: the defaults are under test.
	c := w.cmd("--vmm", "qemu", "--", "sh", "-c", "nproc; grep MemTotal /proc/meminfo")
	args := slices.Clone(c.Args[1:])
	for _, flag := range []string{"--mem", "--cpus"} {
		if i := slices.Index(args, flag); i >= 0 {
			args = slices.Delete(args, i, i+2)
		}
	}
	script := `for f in ` + strings.Join(procs, " ") + `; do echo $$ > "$f" || exit 99; done; exec "$@"`
	c.Args = append([]string{"sh", "-c", script, "sh", c.Path}, args...)
	c.Path = "/bin/sh"
	out, err := c.Output()
	if err != nil {
		t.Fatalf("loftd in a cgroup: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 || f[0] != "1" {
		t.Fatalf("guest nproc/meminfo = %q; want 1 CPU (the cgroup's quota)", out)
	}
	kib, _ := strconv.Atoi(f[2])
	if kib < 1<<20 || kib > 2<<20 {
		t.Errorf("guest MemTotal = %d KiB; want about 2 GiB (80%% of the cgroup's 3 GiB), not the host's", kib)
	}
}

func isDir(p string) bool  { st, err := os.Stat(p); return err == nil && st.IsDir() }
func isFile(p string) bool { st, err := os.Stat(p); return err == nil && st.Mode().IsRegular() }

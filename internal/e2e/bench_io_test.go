package e2e

// I/O cost benchmarks (issue 13): 100 MiB through the workload's stdout,
// and 100 MiB plus 10,000 small files written to and read from /workspace,
// each next to the same work on the host in the same run.
// Run: go test -tags containers_image_openpgp -run '^$' -bench 'CostStdout|CostWorkspace' -benchtime 3x ./internal/e2e/

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
)

// gen100MiB writes 100 MiB of zeros to stdout in 1 MiB writes: busybox's
// `head -c` took 10 s for it under TCG, which buried the relay's cost in
// the generator's.
const gen100MiB = "dd if=/dev/zero bs=1M count=100 2>/dev/null"

// BenchmarkCostStdout: a session writing 100 MiB to stdout, the same
// session generating it into /dev/null (its cost without the relay), and
// the same pipeline on the host. extra-s is what the stdout path adds.
func BenchmarkCostStdout(b *testing.B) {
	w := benchWorld(b)
	timed := func(c *exec.Cmd) time.Duration {
		start := time.Now()
		if out, err := c.Output(); err != nil {
			b.Fatalf("%q: %v\n%.2000s", c.Args, err, out)
		}
		return time.Since(start)
	}
	// cpu is the CPU time of loftd and what it waited for (the helper,
	// QEMU, virtiofsd): on a shared machine the wall time of identical
	// runs varies 2×, the CPU time much less.
	cpu := func(c *exec.Cmd) time.Duration { return c.ProcessState.UserTime() + c.ProcessState.SystemTime() }
	var vmOut, vmGen, host, cpuOut, cpuGen time.Duration
	for b.Loop() {
		c := w.cmd("--vmm", "qemu", "--", "sh", "-c", gen100MiB)
		c.Stdout = nil // /dev/null: the host side of the relay writes for real
		start := time.Now()
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("loftd stdout: %v\n%s", err, out)
		}
		vmOut += time.Since(start)
		cpuOut += cpu(c)
		g := w.cmd("--vmm", "qemu", "--", "sh", "-c", gen100MiB+" >/dev/null")
		vmGen += timed(g)
		cpuGen += cpu(g)
		host += timed(exec.Command("sh", "-c", gen100MiB+" | cat >/dev/null"))
	}
	n := float64(b.N)
	extra := (vmOut - vmGen).Seconds() / n
	b.ReportMetric(vmOut.Seconds()/n, "s-vm-stdout")
	b.ReportMetric(vmGen.Seconds()/n, "s-vm-devnull")
	b.ReportMetric(extra, "extra-s")
	b.ReportMetric(host.Seconds()/n, "s-host")
	b.ReportMetric(extra/(host.Seconds()/n), "extra/host")
	b.ReportMetric((cpuOut-cpuGen).Seconds()/n, "cpu-extra-s")
}

// workspaceScript writes and reads 100 MiB, then 10,000 small files, in
// DIR ($1), timing each part with /proc/uptime (10 ms steps), which both
// the guest and the host have; it prints the five instants. Writes are not
// synced: a host-wide sync would time the other users' dirty data.
const workspaceScript = `set -e
d=$1; mkdir -p $d/s
now() { read u _ < /proc/uptime; echo $u; }
a=$(now); dd if=/dev/zero of=$d/big bs=1M count=100 2>/dev/null; b=$(now)
cat $d/big >/dev/null; c=$(now)
i=0; while [ $i -lt 10000 ]; do echo x >$d/s/$i; i=$((i+1)); done; e=$(now)
cat $d/s/* >/dev/null; f=$(now)
rm -rf $d/big $d/s
echo $a $b $c $e $f`

// BenchmarkCostWorkspace runs workspaceScript in /workspace (virtiofs) and,
// with the same busybox, in a directory on the host's disk, and reports
// each part's ratio guest/host.
func BenchmarkCostWorkspace(b *testing.B) {
	w := benchWorld(b)
	bb := testenv.RequireCommand(b, "busybox", "busybox-static")
	hostDir := b.TempDir()
	// The guest user writes the project, as a developer's own (newWorld).
	if err := os.Chown(w.workspace, guestUID, guestUID); err != nil {
		b.Fatal(err)
	}
	var guest, host [4]float64
	for b.Loop() {
		out, err := w.cmd("--vmm", "qemu", "--", "sh", "-c", workspaceScript, "sh", "/workspace/bench").Output()
		if err != nil {
			b.Fatalf("loftd workspace script: %v\n%s%s", err, out, stderrOf(err))
		}
		add(b, &guest, string(out))
		out, err = exec.Command(bb, "sh", "-c", workspaceScript, "sh", hostDir+"/bench").Output()
		if err != nil {
			b.Fatalf("host workspace script: %v\n%s", err, out)
		}
		add(b, &host, string(out))
	}
	n := float64(b.N)
	for i, name := range []string{"bigwrite", "bigread", "smallwrite", "smallread"} {
		b.ReportMetric(guest[i]/n, "s-vm-"+name)
		b.ReportMetric(guest[i]/max(host[i], 0.01), "ratio-"+name)
	}
}

func stderrOf(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}

// add adds the four durations of one workspaceScript output to sum.
func add(b *testing.B, sum *[4]float64, out string) {
	f := strings.Fields(out)
	if len(f) < 5 {
		b.Fatalf("workspace script printed %q, want 5 times", out)
	}
	var t [5]float64
	for i := range t {
		v, err := strconv.ParseFloat(f[len(f)-5+i], 64)
		if err != nil {
			b.Fatalf("workspace script printed %q: %v", out, err)
		}
		t[i] = v
	}
	for i := range 4 {
		sum[i] += t[i+1] - t[i]
	}
}

package qemu_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/helper/qemu"
	"github.com/loftd/loftd/launch"
)

var (
	loopAccels = flag.String("bootloop.accel", "",
		"space-separated accelerators BenchmarkBootLoop alternates between, each passed to -accel as is "+
			"(e.g. \"tcg tcg,thread=multi\"); default $"+qemu.AccelEnv+" or the probe")
	loopVCPUs = flag.Int("bootloop.vcpus", 2, "vCPUs of each BenchmarkBootLoop boot")
	loopMem   = flag.Int("bootloop.mem", 512, "MiB of each BenchmarkBootLoop boot")
	loopV     = flag.Bool("bootloop.v", false, "print each BenchmarkBootLoop boot's result and time to stderr as it ends")
	loopCmd   = flag.String("bootloop.cmd", "true", "shell command each BenchmarkBootLoop boot runs (its last output is logged)")
)

// BenchmarkBootLoop boots `sh -c true` (-bootloop.cmd) b.N times per accelerator (-benchtime=100x
// for 100 boots in a row) and fails on every boot that does not report
// status 0, quoting the end of its kernel console: a guest kernel that
// crashes once in a while (an Oops under multi-threaded TCG) shows here, not
// as a flaky test elsewhere. With several accelerators the boots alternate,
// so load on the machine weighs on each alike, and each reports its own
// seconds per boot.
func BenchmarkBootLoop(b *testing.B) {
	g := setup(b)
	accels := strings.Fields(*loopAccels)
	if len(accels) == 0 {
		accels = []string{os.Getenv(qemu.AccelEnv)}
	}
	spent := make([]time.Duration, len(accels))
	failed := make([]int, len(accels))
	n, last := 0, ""
	for b.Loop() {
		n++
		for i, accel := range accels {
			r := &run{cmd: []string{"sh", "-c", *loopCmd}, runDir: b.TempDir(), vcpus: *loopVCPUs}
			start := time.Now()
			got, err := g.bootWith(b, context.Background(), r, func(c *qemu.Config) {
				c.Accel, c.Plan.RAMMiB = accel, launch.MiB(*loopMem)
			})
			spent[i] += time.Since(start)
			last = r.out.String()
			if *loopV {
				fmt.Fprintf(os.Stderr, "bootloop: boot %d accel %q: status %d, err %s, %.2f s\n",
					n, accel, got, firstLine(err), time.Since(start).Seconds())
			}
			if err != nil || got != 0 {
				failed[i]++
				b.Errorf("boot %d (accel %q, %d vCPUs) = %d, %v\nconsole.log:\n%s",
					n, accel, *loopVCPUs, got, firstLine(err), consoleTail(r.runDir, 40))
			}
		}
	}
	if last != "" {
		b.Logf("last boot's stdout:\n%s", last)
	}
	for i, accel := range accels {
		name := accel
		if name == "" {
			name = "default"
		}
		b.Logf("accel %q: %d of %d boots failed, %.2f s/boot", name, failed[i], n, spent[i].Seconds()/float64(n))
		b.ReportMetric(spent[i].Seconds()/float64(n), "s/boot-"+name)
		b.ReportMetric(float64(failed[i]), "failed-"+name)
	}
}

func firstLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

// consoleTail is the last n lines of the run's kernel console.
func consoleTail(runDir string, n int) string {
	data, err := os.ReadFile(filepath.Join(runDir, "console.log"))
	if err != nil {
		return fmt.Sprintf("  (%v)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

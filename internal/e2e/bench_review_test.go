package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// write10k writes 10,000 small files into a new directory of /workspace.
const write10k = `d=$(mktemp -d /workspace/w.XXXXXX) && cd "$d" && i=0 && while [ $i -lt 10000 ]; do echo $i > f$i; i=$((i+1)); done`

// BenchmarkReviewOverhead: a run with --review against the same run
// without, alternating in each op so both see the same machine load;
// reported as the ratio review/plain and each side's seconds per run.
func BenchmarkReviewOverhead(b *testing.B) {
	for _, tc := range []struct {
		name   string
		script string
	}{
		{"true", "true"},
		{"write10k", write10k},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := benchWorld(b)
			if err := os.Chown(w.workspace, guestUID, guestUID); err != nil { // the guest user's project
				b.Fatal(err)
			}
			var plain, review time.Duration
			for b.Loop() {
				for _, rv := range []bool{false, true} {
					args := []string{"--vmm", "qemu", "--", "sh", "-c", tc.script}
					if rv {
						args = append([]string{"--review"}, args...)
					}
					start := time.Now()
					if out, err := w.cmd(args...).CombinedOutput(); err != nil {
						b.Fatalf("loftd %q: %v\n%s", args, err, out)
					}
					if rv {
						review += time.Since(start)
					} else {
						plain += time.Since(start)
					}
				}
			}
			b.ReportMetric(review.Seconds()/plain.Seconds(), "review/plain")
			b.ReportMetric(plain.Seconds()/float64(b.N), "plain-s/run")
			b.ReportMetric(review.Seconds()/float64(b.N), "review-s/run")
		})
	}
}

// BenchmarkSnapshotInDisk2GiB: an in-disk snapshot save and restore of a
// nix disk holding 2 GiB, each a maintenance VM, against a plain `true`
// session in the same op (the VM boot both pay).
func BenchmarkSnapshotInDisk2GiB(b *testing.B) {
	w := benchWorld(b)
	sub := func(args ...string) {
		c := exec.Command(bins.loftd, append(args, "--workspace", w.workspace, "--vmm", "qemu", "--guest-init", bins.guestInit)...)
		c.Env = append(os.Environ(), "XDG_STATE_HOME="+w.state, "XDG_CONFIG_HOME="+filepath.Join(w.state, "config"))
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("loftd %q: %v\n%s", args, err, out)
		}
	}
	if out, err := w.cmd("--vmm", "qemu", "--root", "--", "sh", "-c", "dd if=/dev/zero of=/nix/big bs=1M count=2048 2>/dev/null && sync").CombinedOutput(); err != nil {
		b.Fatalf("fill /nix: %v\n%s", err, out)
	}
	var plain, save, restore time.Duration
	for i := 0; b.Loop(); i++ {
		name := "b" + strconv.Itoa(i)
		t0 := time.Now()
		if out, err := w.cmd("--vmm", "qemu", "--", "true").CombinedOutput(); err != nil {
			b.Fatalf("true: %v\n%s", err, out)
		}
		t1 := time.Now()
		sub("snapshot", "save", "--method", "in-disk", name)
		t2 := time.Now()
		sub("snapshot", "restore", name)
		t3 := time.Now()
		plain, save, restore = plain+t1.Sub(t0), save+t2.Sub(t1), restore+t3.Sub(t2)
	}
	n := float64(b.N)
	b.ReportMetric(plain.Seconds()/n, "true-s/run")
	b.ReportMetric(save.Seconds()/n, "save-s")
	b.ReportMetric(restore.Seconds()/n, "restore-s")
	b.ReportMetric(save.Seconds()/plain.Seconds(), "save/true")
}

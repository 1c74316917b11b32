package e2e

import (
	"os"
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

package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// largeBytes and -large-runs size TestLargeOutputComplete. Before the fix
// (issue 7, defect 10) 30 MiB lost its tail in about half the runs (the
// second run failed here); 4 runs per stream keep the suite's wall time
// near 3 minutes under TCG, and -large-runs=20 is the full check.
const largeBytes = 30 << 20

var largeRuns = flag.Int("large-runs", 4, "runs per stream of TestLargeOutputComplete")

// TestLargeOutputComplete pipes 30 MiB of random data out of the guest,
// through a pipe the test reads in small pieces, and compares its digest
// with the one the guest computed: a tail still in flight in the serial
// ports when the VM ends must not be dropped.
func TestLargeOutputComplete(t *testing.T) {
	w := newWorld(t)
	for _, stream := range []string{"stdout", "stderr"} {
		redirect := ""
		if stream == "stderr" {
			redirect = " >&2"
		}
		script := fmt.Sprintf("head -c %d /dev/urandom >/tmp/r && sha256sum /tmp/r >/workspace/sum && cat /tmp/r%s", largeBytes, redirect)
		for i := range *largeRuns {
			status, n, got := w.runDigest(stream, "--", "sh", "-c", script)
			sum, err := os.ReadFile(filepath.Join(w.workspace, "sum"))
			want, _, _ := strings.Cut(string(sum), " ")
			if err != nil || status != 0 || got != want || n != largeBytes {
				t.Fatalf("run %d, 30 MiB on %s: status %d, host got %d bytes sha256 %s; guest sha256 %q (%v)",
					i, stream, status, n, got, want, err)
			}
			os.Remove(filepath.Join(w.workspace, "sum"))
		}
	}
}

// runDigest runs loftd with stream (stdout or stderr) on a pipe the test
// reads in 4 KiB pieces into sha256, the other stream to /dev/null, and
// returns loftd's status, the bytes read and their digest.
func (w *world) runDigest(stream string, args ...string) (int, int64, string) {
	w.t.Helper()
	r, pw, err := os.Pipe()
	if err != nil {
		w.t.Fatal(err)
	}
	defer r.Close()
	c := w.cmd(args...)
	var other strings.Builder
	if stream == "stdout" {
		c.Stdout, c.Stderr = pw, &other
	} else {
		c.Stdout, c.Stderr = &other, pw
	}
	if err := c.Start(); err != nil {
		w.t.Fatal(err)
	}
	pw.Close()
	h := sha256.New()
	n, _ := io.CopyBuffer(h, bufio.NewReaderSize(r, 4096), make([]byte, 4096))
	_ = c.Wait()
	if c.ProcessState == nil {
		w.t.Fatalf("loftd %q did not run", args)
	}
	return c.ProcessState.ExitCode(), n, hex.EncodeToString(h.Sum(nil))
}

// TestClosedReader is `loftd -- yes | head -c 10`: once the reader of
// stdout (or stderr) is gone, the workload's writes must fail as in a local
// pipeline (SIGPIPE, status 141), not be drained forever.
func TestClosedReader(t *testing.T) {
	w := newWorld(t)
	for _, tt := range []struct{ stream, script string }{
		{"stdout", "yes"},
		{"stderr", "yes >&2"},
	} {
		t.Run(tt.stream, func(t *testing.T) {
			r, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			c := w.cmd("--", "sh", "-c", tt.script)
			var other strings.Builder
			if tt.stream == "stdout" {
				c.Stdout, c.Stderr = pw, &other
			} else {
				c.Stdout, c.Stderr = &other, pw
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			buf := make([]byte, 10)
			_, rerr := io.ReadFull(r, buf)
			r.Close() // head -c 10 exits
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(90 * time.Second):
				_ = c.Process.Kill()
				<-done
				t.Fatalf("loftd -- sh -c %q | head -c 10: still running 90 s after the reader closed (stderr %q)", tt.script, other.String())
			}
			status := c.ProcessState.ExitCode()
			if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				status = 128 + int(ws.Signal())
			}
			if rerr != nil || string(buf) != "y\ny\ny\ny\ny\n" || status != 128+int(syscall.SIGPIPE) {
				t.Errorf("loftd -- sh -c %q | head -c 10: read %q (%v), status %d, want 10 bytes of y and 141 (loftd's other stream %q)",
					tt.script, buf, rerr, status, other.String())
			}
		})
	}
}

// TestZombiesReaped: orphans of the workload are reparented to the guest
// init, which must reap them; the workload's own status stays exact.
func TestZombiesReaped(t *testing.T) {
	w := newWorld(t)
	// A subshell's background child outlives it: its parent becomes the
	// init. After it exits, count zombies.
	script := `(sleep 0.2 &); sleep 2; z=0; for s in /proc/[0-9]*/stat; do read -r l <$s 2>/dev/null || continue; case "${l##*) }" in Z*) z=$((z+1));; esac; done; echo zombies=$z; exit 5`
	status, stdout, stderr := w.run("", "--", "sh", "-c", script)
	if status != 5 || strings.TrimSpace(stdout) != "zombies=0" {
		t.Errorf("loftd -- sh -c %q = %d, stdout %q (stderr %q); want 5, zombies=0", script, status, stdout, stderr)
	}
}

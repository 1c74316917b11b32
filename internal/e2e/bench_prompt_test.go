package e2e

import (
	"bytes"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

// BenchmarkCostPrompt: agentbox's time to its first prompt with the default
// image against `loftd -- true` with the same image and machine, in pairs
// in one run (issue 23's goal: at most 1.3×). The prompt is bash's, the
// login shell the held session starts; the time runs from agentbox's start
// to the prompt on its terminal. `exit` then ends the VM, and agentbox
// returns once it is down (session.Attach), so the next pair starts clean.
func BenchmarkCostPrompt(b *testing.B) {
	w := defaultImageWorld(b)
	home := b.TempDir() // the guest user's host home, as sudo leaves it
	if err := os.Chown(home, guestUID, guestUID); err != nil {
		b.Fatal(err)
	}
	var trueTotal, promptTotal time.Duration
	for b.Loop() {
		start := time.Now()
		if out, err := w.cmd("--vmm", "qemu", "--image", "localhost/loftd:latest", "--", "true").CombinedOutput(); err != nil {
			b.Fatalf("loftd -- true: %v\n%s", err, out)
		}
		trueTotal += time.Since(start)
		promptTotal += promptTime(b, w, home)
	}
	n := float64(b.N)
	b.ReportMetric(float64(trueTotal.Milliseconds())/n, "ms-true")
	b.ReportMetric(float64(promptTotal.Milliseconds())/n, "ms-prompt")
	b.ReportMetric(float64(promptTotal)/float64(trueTotal), "prompt/true")
}

// promptTime runs agentbox on a new terminal until its shell prompts, then
// exits the shell and waits for agentbox to return.
func promptTime(b *testing.B, w *world, home string) time.Duration {
	b.Helper()
	master, slave := openPty(b)
	c := w.agentboxCmd(home, "--vmm", "qemu", "--image", "localhost/loftd:latest")
	c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	start := time.Now()
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	slave.Close()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	var seen bytes.Buffer
	var took time.Duration
	buf := make([]byte, 4096)
	for took == 0 {
		_ = master.SetReadDeadline(time.Now().Add(3 * time.Minute))
		n, err := master.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			b.Fatalf("agentbox: no prompt (%v); its terminal:\n%s", err, seen.Bytes())
		}
		// bash ends its prompt with "$ " (or "# "), then may turn on
		// bracketed paste.
		tail := bytes.TrimSuffix(seen.Bytes(), []byte("\x1b[?2004h"))
		if bytes.HasSuffix(tail, []byte("$ ")) {
			took = time.Since(start)
		}
	}
	if _, err := master.Write([]byte("exit\n")); err != nil {
		b.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, master) }()
	select {
	case err := <-done:
		if err != nil {
			b.Fatalf("agentbox after exit: %v; its terminal:\n%s", err, seen.Bytes())
		}
	case <-time.After(3 * time.Minute):
		_ = c.Process.Kill()
		b.Fatalf("agentbox did not return after exit; its terminal:\n%s", seen.Bytes())
	}
	return took
}

package e2e

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

// TestAgentboxOffersBuild: agentbox in a terminal, on a state without the
// default image, asks whether to build it; "n" gives the error that names
// the build commands, and nothing is built.
func TestAgentboxOffersBuild(t *testing.T) {
	w := newWorld(t)
	master, slave := openPty(t)
	c := w.cmd("--", "true")
	// No --rootfs and no --image: the default image is what is missing.
	c.Path, c.Args = agentboxBin(t), []string{"agentbox", "--workspace", w.workspace, "--", "true"}
	c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	prompt := make(chan string, 1)
	go func() {
		r := bufio.NewReader(master)
		var seen strings.Builder
		for {
			b, err := r.ReadByte()
			if err != nil {
				prompt <- seen.String()
				return
			}
			seen.WriteByte(b)
			if strings.HasSuffix(seen.String(), "[Y/n] ") {
				prompt <- seen.String()
				_, _ = master.Write([]byte("n\n"))
				var rest strings.Builder
				for {
					b, err := r.ReadByte()
					if err != nil {
						break
					}
					rest.WriteByte(b)
					if strings.Contains(rest.String(), "loftd image import") {
						prompt <- rest.String()
						return
					}
				}
				prompt <- rest.String()
				return
			}
		}
	}()
	select {
	case p := <-prompt:
		if !strings.Contains(p, "localhost/loftd:latest is not built") {
			t.Fatalf("agentbox without the default image printed %q, want the offer to build it", p)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("agentbox asked nothing within 2 minutes")
	}
	select {
	case rest := <-prompt:
		if !strings.Contains(rest, "loftd image build") {
			t.Errorf("after answering n: %q, want the error naming loftd image build", rest)
		}
	case <-time.After(time.Minute):
		t.Error("no error after answering n")
	}
	<-done
	if got := c.ProcessState.ExitCode(); got != 125 {
		t.Errorf("agentbox after declining the build: status %d, want 125", got)
	}
}

package helper

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/egress"
	"github.com/loftd/loftd/egress/netstack"
	"github.com/loftd/loftd/launch"
	"golang.org/x/sys/unix"
)

// The denial file is bounded: past maxDenialLines it ends with the
// truncation line, and the summary read from it says "at least".
func TestDenialFileBounded(t *testing.T) {
	dir := t.TempDir()
	l, closeLog, err := denialLog(filepath.Join(dir, DenialsFile), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for range maxDenialLines + 5 {
		l.Add(egress.Denial{Proto: egress.UDP, Addr: "192.0.2.1", Port: 53, Reason: egress.UDPDenied})
	}
	closeLog()
	got, err := ReadDenials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Total() != maxDenialLines || !got.Truncated || !strings.Contains(got.Summary(), "at least") {
		t.Errorf("read back %d denials, truncated %v, %q; want %d, true, \"at least\"", got.Total(), got.Truncated, got.Summary(), maxDenialLines)
	}
	empty, err := ReadDenials(t.TempDir())
	if err != nil || empty.Summary() != "" {
		t.Errorf("no denial file: %q, %v; want no summary", empty.Summary(), err)
	}
}

// Each published port of a range is one forward.
func TestNetstackPublishes(t *testing.T) {
	got := netstackPublishes([]launch.Publish{
		{HostIP: "127.0.0.1", HostFirst: 8000, HostLast: 8001, GuestFirst: 80, GuestLast: 81, Proto: launch.TCP},
		{HostFirst: 53, HostLast: 53, GuestFirst: 5353, GuestLast: 5353, Proto: launch.UDP},
	})
	want := []netstack.Publish{
		{HostIP: "127.0.0.1", HostPort: 8000, GuestPort: 80},
		{HostIP: "127.0.0.1", HostPort: 8001, GuestPort: 81},
		{UDP: true, HostPort: 53, GuestPort: 5353},
	}
	if !slices.Equal(got, want) {
		t.Errorf("netstackPublishes = %+v, want %+v", got, want)
	}
}

// The netstack's filter refuses exec and unshare with EPERM. The filter
// cannot be removed, so the test runs itself as a child (as tailscale's
// privilege tests do) and the child reports.
func TestConfineNetstack(t *testing.T) {
	if os.Getenv("LOFTD_TEST_CONFINE_CHILD") == "1" {
		if err := confineNetstack(); err != nil {
			fmt.Println("confine:", err)
			os.Exit(1)
		}
		err := syscall.Exec("/bin/true", []string{"true"}, nil)
		fmt.Println("exec:", err)
		fmt.Println("unshare:", unix.Unshare(unix.CLONE_NEWUTS))
		os.Exit(0)
	}
	c := exec.Command(os.Args[0], "-test.run=^TestConfineNetstack$")
	c.Env = append(os.Environ(), "LOFTD_TEST_CONFINE_CHILD=1")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, want := range []string{"exec: operation not permitted", "unshare: operation not permitted"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child said %q, want %q", out, want)
		}
	}
}

package helper

import (
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loftd/loftd/egress"
	"github.com/loftd/loftd/egress/netstack"
	"github.com/loftd/loftd/launch"
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

package passt

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/launch"
)

func TestParseHelp(t *testing.T) {
	// Debian 12's 0.0~git20230309 against a 2024-08+ release.
	old := "  -F, --fd FD\t\tUse FD as pre-opened connected socket\n  --no-map-gw\t\tDon't map gateway address to host\n"
	cur := old + "  --map-host-loopback ADDR\n  --map-guest-addr ADDR\n  --dns-host ADDR\n"
	if got := parseHelp(old, "passt unknown version\nCopyright Red Hat"); got != (Features{Version: "unknown version", FD: true}) {
		t.Errorf("old passt: %+v", got)
	}
	want := Features{Version: "2025_01_21.4f2c8e7", FD: true, MapHostLoopback: true, MapGuestAddr: true, DNSHost: true}
	if got := parseHelp(cur, "passt 2025_01_21.4f2c8e7\n"); got != want {
		t.Errorf("current passt: %+v, want %+v", got, want)
	}
}

func TestArgs(t *testing.T) {
	base := []string{"-f", "-q", "--fd", "3", "-a", "10.0.2.15", "-n", "24", "-g", "10.0.2.2", "--dns-forward", "10.0.2.3"}
	tests := []struct {
		name string
		f    Features
		pubs []launch.Publish
		want []string
	}{
		{"old passt, nothing published", Features{FD: true}, nil,
			append(slices.Clone(base), "-4", "-t", "none", "-u", "none")},
		{"current passt, tcp and udp", Features{FD: true, MapHostLoopback: true}, []launch.Publish{
			{HostIP: "127.0.0.1", HostFirst: 8080, HostLast: 8080, GuestFirst: 80, GuestLast: 80, Proto: launch.TCP},
			{HostFirst: 9000, HostLast: 9001, GuestFirst: 90, GuestLast: 91, Proto: launch.TCP},
			{HostFirst: 5353, HostLast: 5353, GuestFirst: 53, GuestLast: 53, Proto: launch.UDP},
		}, append(slices.Clone(base), "--map-host-loopback", "10.0.2.2", "-t", "127.0.0.1/8080:80", "-t", "9000-9001:90-91", "-u", "5353:53")},
		{"udp only, an IPv6 address", Features{FD: true, MapHostLoopback: true}, []launch.Publish{
			{HostIP: "::1", HostFirst: 5000, HostLast: 5002, GuestFirst: 6000, GuestLast: 6002, Proto: launch.UDP},
		}, append(slices.Clone(base), "--map-host-loopback", "10.0.2.2", "-t", "none", "-u", "::1/5000-5002:6000-6002")},
	}
	for _, tt := range tests {
		if got := Args(tt.f, 3, tt.pubs); !slices.Equal(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

// TestStartEndsWithVMEnd: the real passt starts on the socketpair and ends
// by itself once the VM's end closes (what reaps it when the helper is
// killed outright); Probe's answer is cached.
func TestStartEndsWithVMEnd(t *testing.T) {
	path := testenv.RequireCommand(t, "passt", "passt")
	cache := t.TempDir()
	f, err := Probe(path, cache)
	if err != nil || !f.FD {
		t.Fatalf("Probe(%s) = %+v, %v; want --fd", path, f, err)
	}
	if again, err := Probe(path, cache); err != nil || again != f {
		t.Errorf("cached Probe = %+v, %v; want %+v", again, err, f)
	}
	logPath := t.TempDir() + "/passt.log"
	proc, vmEnd, err := Start(Config{Path: path, Features: f, LogPath: logPath})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if done, err := proc.Exited(); done {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("passt exited at once: %v %s", err, log)
	}
	vmEnd.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if done, _ := proc.Exited(); done {
			break
		}
		if time.Now().After(deadline) {
			proc.Stop(time.Second)
			t.Fatalf("passt (pid %d) still runs 10 s after the VM's end closed", proc.Pid())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat("/proc/" + itoa(proc.Pid())); err == nil {
		t.Errorf("passt pid %d not reaped", proc.Pid())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestVersionThroughTerminal: a passt that prints its version only to a
// terminal (2024–2025 releases leave by _exit with the line still in
// stdio's buffer) still gets its version read.
func TestVersionThroughTerminal(t *testing.T) {
	dir := t.TempDir()
	fake := dir + "/passt"
	// A shell stand-in: it prints only when stdout is a terminal.
	script := "#!/bin/sh\nif [ \"$1\" = --version ] && [ -t 1 ]; then echo 'passt 2025_05_03.587980c'; echo 'Copyright Red Hat'; fi\nif [ \"$1\" = --help ]; then echo '  --fd FD'; echo '  --map-host-loopback ADDR' >&2; fi\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := Probe(fake, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Features{Version: "2025_05_03.587980c", FD: true, MapHostLoopback: true}); f != want {
		t.Errorf("Probe = %+v, want %+v", f, want)
	}
}

package e2e

// Network benchmark (issues 11 and 20): round-trip time and 100 MiB each
// way between the host and a guest, through passt, through loftd's egress
// network with no rules (--allow-host only) and with 100 rules (50 names,
// 50 CIDRs: allow-list mode), next to the same exchange over the host's
// loopback in the same run. The host side times everything, so the
// guest's clock under TCG does not count.
// Run: go test -tags containers_image_openpgp -run '^$' -bench 'Net' -benchtime 3x ./internal/e2e/

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

const (
	netBytes = 100 << 20
	netRTTs  = 200
)

// netResult is one exchange: the median round trip and the two 100 MiB
// transfers.
type netResult struct{ rtt, toGuest, fromGuest time.Duration }

// netVariants are the guest networks BenchmarkNet compares.
func netVariants() []struct {
	name string
	args []string
} {
	hundred := []string{"--allow-host"}
	for i := range 50 {
		hundred = append(hundred, "--allow", fmt.Sprintf("host%d.example.com", i), "--allow", fmt.Sprintf("198.18.%d.0/24", i))
	}
	return []struct {
		name string
		args []string
	}{
		{"passt", []string{"--network", "passt"}},
		{"egress", []string{"--allow-host"}},
		{"egress100", hundred},
	}
}

func BenchmarkNet(b *testing.B) {
	w := benchWorld(b)
	tool := filepath.Join(w.root, "bin", "netbench")
	build := exec.Command("go", "build", "-o", tool, "./testdata/netbench")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build netbench: %v\n%s", err, out)
	}
	variants := netVariants()
	guest := make([]netResult, len(variants))
	var host netResult
	for b.Loop() {
		for i, v := range variants {
			guest[i].add(netExchange(b, func(port int) *exec.Cmd {
				addr := "host.containers.internal:" + strconv.Itoa(port)
				return w.cmd(append(v.args, "--", "sh", "-c", fmt.Sprintf("netbench echo %s && netbench sink %s && netbench source %s %d", addr, addr, addr, netBytes))...)
			}))
		}
		host.add(netExchange(b, func(port int) *exec.Cmd {
			addr := "127.0.0.1:" + strconv.Itoa(port)
			return exec.Command("sh", "-c", fmt.Sprintf("%[1]s echo %[2]s && %[1]s sink %[2]s && %[1]s source %[2]s %[3]d", tool, addr, netBytes))
		}))
	}
	n := float64(b.N)
	mibps := func(d time.Duration) float64 { return float64(netBytes>>20) * n / d.Seconds() }
	b.ReportMetric(float64(host.rtt.Microseconds())/n, "us-rtt-loopback")
	b.ReportMetric(mibps(host.toGuest), "MiB/s-loopback-in")
	b.ReportMetric(mibps(host.fromGuest), "MiB/s-loopback-out")
	for i, v := range variants {
		g := guest[i]
		b.ReportMetric(float64(g.rtt.Microseconds())/n, "us-rtt-"+v.name)
		b.ReportMetric(mibps(g.toGuest), "MiB/s-host-to-guest-"+v.name)
		b.ReportMetric(mibps(g.fromGuest), "MiB/s-guest-to-host-"+v.name)
		b.ReportMetric(g.toGuest.Seconds()/host.toGuest.Seconds(), "ratio-host-to-guest-"+v.name)
		b.ReportMetric(g.fromGuest.Seconds()/host.fromGuest.Seconds(), "ratio-guest-to-host-"+v.name)
	}
}

func (r *netResult) add(o netResult) {
	r.rtt += o.rtt
	r.toGuest += o.toGuest
	r.fromGuest += o.fromGuest
}

// netExchange listens on the host's loopback, starts the client (the guest
// through loftd, or the same tool on the host) and serves its three
// connections in order: echo, sink, source.
func netExchange(b *testing.B, client func(port int) *exec.Cmd) netResult {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	c := client(l.Addr().(*net.TCPAddr).Port)
	out := &limitedBuffer{}
	c.Stdout, c.Stderr = out, out
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	// A client that ends early closes the listener, so a pending Accept
	// fails instead of waiting for ever.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = c.Wait(); l.Close(); close(exited) }()
	defer func() {
		<-exited
		if waitErr != nil {
			b.Fatalf("client: %v\n%s", waitErr, out.b)
		}
	}()
	accept := func() net.Conn {
		conn, err := l.Accept()
		if err != nil {
			<-exited
			b.Fatalf("accept: %v; client: %v\n%s", err, waitErr, out.b)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Minute))
		return conn
	}
	var r netResult

	conn := accept() // echo: one byte there and back, netRTTs times
	rtts := make([]time.Duration, netRTTs)
	one := []byte{'x'}
	for i := range rtts {
		start := time.Now()
		if _, err := conn.Write(one); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, one); err != nil {
			b.Fatal(err)
		}
		rtts[i] = time.Since(start)
	}
	conn.Close()
	slices.Sort(rtts)
	r.rtt = rtts[len(rtts)/2]

	conn = accept() // sink: 100 MiB to the client, until its one-byte answer
	start := time.Now()
	buf := make([]byte, 1<<20)
	for sent := 0; sent < netBytes; sent += len(buf) {
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	conn.(*net.TCPConn).CloseWrite()
	if _, err := io.ReadFull(conn, one); err != nil {
		b.Fatal(err)
	}
	r.toGuest = time.Since(start)
	conn.Close()

	conn = accept() // source: 100 MiB from the client, to its end
	start = time.Now()
	got, err := io.Copy(io.Discard, conn)
	r.fromGuest = time.Since(start)
	conn.Close()
	if err != nil || got != netBytes {
		b.Fatalf("from the client: %d bytes, %v; want %d", got, err, netBytes)
	}
	return r
}

// limitedBuffer keeps the first 64 KiB of the client's output, for errors.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

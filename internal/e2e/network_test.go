package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
	"golang.org/x/net/dns/dnsmessage"
)

// Every server of these tests listens on the host's loopback only: nothing
// the guest does through passt leaves this machine.

// hostHTTP serves body on 127.0.0.1 and returns its port.
func hostHTTP(t *testing.T, body string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// hostDNS answers A queries for name with addr on 127.0.0.77:53/udp (a
// loopback address of its own, so it never meets a resolver of the host)
// (a taken port fails the test: the DNS check must run).
func hostDNS(t *testing.T, name string, addr [4]byte) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.77:53")
	if err != nil {
		t.Fatalf("the test's DNS server on 127.0.0.77:53: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			t.Logf("dns query from %v: %v %v", from, q.Name, q.Type)
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			b.EnableCompression()
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if q.Type == dnsmessage.TypeA && strings.EqualFold(q.Name.String(), name+".") {
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: addr})
			}
			if msg, err := b.Finish(); err == nil {
				pc.WriteTo(msg, from)
			}
		}
	}()
}

// withResolver runs c in a mount namespace of its own where
// /etc/resolv.conf names only 127.0.0.77: passt forwards the guest's DNS
// to the host's first nameserver, read from that file.
func withResolver(t *testing.T, c *exec.Cmd) {
	t.Helper()
	unshare := testenv.RequireCommand(t, "unshare", "util-linux")
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 127.0.0.77\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Args = append([]string{unshare, "-m", "--propagation", "private", "sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec "$@"`, conf}, c.Args...)
	c.Path = unshare
}

// TestNetworkHostAccess: through passt, and through loftd's egress network
// with --allow-host, the guest reaches a server on the host's 127.0.0.1 as
// host.containers.internal, its resolver is the network's DNS forward
// address, and a name the test's own resolver knows resolves through that
// forward.
func TestNetworkHostAccess(t *testing.T) {
	w := newWorld(t)
	port := hostHTTP(t, "hello from the host\n")
	hostDNS(t, "loftd-test.example", [4]byte{192, 0, 2, 77})
	for _, args := range [][]string{{"--network", "passt"}, {"--allow-host"}} {
		testHostAccess(t, w, port, args)
	}
}

func testHostAccess(t *testing.T, w *world, port int, args []string) {
	t.Helper()
	script := fmt.Sprintf(`wget -q -O - http://host.containers.internal:%d/ || echo "wget failed: $?"
wget -q -O - http://host.docker.internal:%d/ >/dev/null && echo docker-alias-ok
cat /etc/resolv.conf
grep host.containers.internal /etc/hosts
nslookup loftd-test.example 2>&1
`, port, port)
	c := w.cmd(append(args, "--", "sh", "-c", script)...)
	withResolver(t, c)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("loftd: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	got := out.String()
	for _, want := range []string{"hello from the host\n", "docker-alias-ok", "nameserver 10.0.2.3", "10.0.2.2\thost.containers.internal host.docker.internal"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q: guest output lacks %q:\n%s\nstderr:\n%s", args, want, got, errb.String())
		}
	}
	if !strings.Contains(got, "192.0.2.77") {
		t.Errorf("%q: loftd-test.example did not resolve through the DNS forward to the test's resolver on 127.0.0.77:\n%s", args, got)
	}
}

// TestNetworkNone: --network none leaves the guest lo (and the kernel's
// own dummy0, down): no eth0, and the same fetch fails at once.
func TestNetworkNone(t *testing.T) {
	w := newWorld(t)
	port := hostHTTP(t, "hello\n")
	status, out, stderr := w.run("", "--network", "none", "--", "sh", "-c",
		fmt.Sprintf(`ls /sys/class/net; nc -w 5 10.0.2.2 %d </dev/null && echo fetched; ip route`, port))
	if status != 0 {
		t.Fatalf("status %d; stderr:\n%s", status, stderr)
	}
	ifs := strings.Fields(strings.Split(out, "\n")[0])
	if strings.Contains(out, "eth0") || strings.Contains(out, "fetched") || !strings.Contains(out, "lo") {
		t.Errorf("--network none: interfaces %q, output:\n%s\nwant lo and no eth0, no fetch", ifs, out)
	}
	if !strings.Contains(stderr, "unreachable") {
		t.Errorf("--network none: the fetch did not fail for want of a route:\n%s", stderr)
	}
}

// freePort returns a port free on 127.0.0.1 for proto at the time of the call.
func freePort(t *testing.T, proto string) int {
	t.Helper()
	if proto == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// publishVM starts a VM publishing tcpPort (guest 8080, a server answering
// "hi from NAME") and, when udpPort > 0, udpPort (guest 9090, whose
// datagrams the guest writes to the workspace). It runs until the test
// ends or stop is called.
func publishVM(t *testing.T, w *world, name string, tcpPort, udpPort int, netArgs ...string) (stop func()) {
	t.Helper()
	args := netArgs
	script := ""
	if tcpPort > 0 {
		args = append(args, "-p", fmt.Sprintf("127.0.0.1:%d:8080", tcpPort))
		script = fmt.Sprintf(`while true; do nc -l -p 8080 -e echo hi from %s; done &
`, name)
	}
	if udpPort > 0 {
		// busybox has no UDP server: a static one of our own.
		build := exec.Command("go", "build", "-o", filepath.Join(w.root, "bin", "udpecho"), "./testdata/udpecho")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build udpecho: %v\n%s", err, out)
		}
		args = append(args, "-p", fmt.Sprintf("127.0.0.1:%d:9090/udp", udpPort))
		script += "udpecho 9090 /workspace/.udp-ready &\n"
	}
	return backgroundVM(t, w, name, args, script)
}

// backgroundVM starts loftd ARGS -- sh -c SCRIPT in w, the script's
// servers left running until stop (or the test's end) ends the VM.
func backgroundVM(t *testing.T, w *world, name string, args []string, script string) (stop func()) {
	t.Helper()
	script += "while [ ! -e /workspace/stop ]; do sleep 0.2; done\n"
	c := w.cmd(append(args, "--", "sh", "-c", script)...)
	var errb bytes.Buffer
	c.Stderr = &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		select {
		case <-done: // before it was told: a VM that never served
			t.Errorf("%s: loftd ended before the test stopped it: %v; stderr:\n%s", name, c.ProcessState, errb.String())
			return
		default:
		}
		os.WriteFile(filepath.Join(w.workspace, "stop"), nil, 0o644)
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = c.Process.Kill()
			<-done
			t.Errorf("%s: loftd did not end within a minute; stderr:\n%s", name, errb.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

// askTCP connects to the host port until the guest's server answers (passt
// accepts on the host before the guest listens, then resets).
func askTCP(t *testing.T, port int, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
		if err == nil {
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			data, _ := io.ReadAll(conn)
			conn.Close()
			last = string(data)
			if strings.Contains(last, want) {
				return
			}
		} else {
			last = err.Error()
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Errorf("127.0.0.1:%d never answered %q (last: %q)", port, want, last)
}

// TestPublish: -p 127.0.0.1:PORT:8080 and a /udp publish reach servers in
// the guest on loftd's egress network (the default); two VMs publishing
// different ports at once both answer.
func TestPublish(t *testing.T) {
	testPublish(t)
}

// TestPublishPasst: the same through passt, which needs the passt loftd
// picks to carry TCP (2024-08 or later: make deps runs scripts/fetch-passt,
// which builds Debian 13's).
func TestPublishPasst(t *testing.T) {
	requireTCPPasst(t)
	testPublish(t, "--network", "passt")
}

func testPublish(t *testing.T, netArgs ...string) {
	w1, w2 := newWorld(t), newWorld(t)
	tcp1, udp1, tcp2 := freePort(t, "tcp"), freePort(t, "udp"), freePort(t, "tcp")
	stop1 := publishVM(t, w1, "vm1", tcp1, udp1, netArgs...)
	stop2 := publishVM(t, w2, "vm2", tcp2, 0, netArgs...)
	askTCP(t, tcp1, "hi from vm1")
	askTCP(t, tcp2, "hi from vm2")
	askUDP(t, w1, udp1)
	stop1()
	stop2()
}

// TestPublishTCPOldPasst: on a passt without --map-host-loopback (Debian
// 12's, which never completes a TCP connection into the guest), a TCP
// publish fails before boot naming the fix, and a UDP publish still
// works. The stand-in answers --help as Debian 12's does and runs it.
func TestPublishTCPOldPasst(t *testing.T) {
	w := newWorld(t)
	real := testenv.RequireCommand(t, "passt", "passt")
	old := filepath.Join(t.TempDir(), "passt")
	stub := fmt.Sprintf("#!/bin/sh\nif [ \"$1\" = --help ]; then echo '  -F, --fd FD'; echo '  --no-map-gw'; exit 0; fi\nexec %s \"$@\"\n", real)
	if err := os.WriteFile(old, []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOFTD_PASST", old)
	status, _, stderr := w.run("", "--network", "passt", "-p", fmt.Sprintf("127.0.0.1:%d:8080", freePort(t, "tcp")), "--", "true")
	if status != 125 || !strings.Contains(stderr, "does not complete TCP connections into the guest") || !strings.Contains(stderr, "scripts/fetch-passt") {
		t.Errorf("-p tcp on an old passt: status %d, stderr %q; want 125 naming scripts/fetch-passt", status, stderr)
	}
	udp := freePort(t, "udp")
	stop := publishVM(t, w, "vm1", 0, udp, "--network", "passt")
	askUDP(t, w, udp)
	stop()
}

// TestPasstProbedOnce: a run asks its passt for --help once, in the host,
// and the plan carries the answer to the helper, which starts passt without
// asking again. The stand-in counts each --help it answers, then is the
// real passt; the session boots with its network and publishes a port, so
// the helper really starts it.
func TestPasstProbedOnce(t *testing.T) {
	w := newWorld(t)
	real := testenv.RequireCommand(t, "passt", "passt")
	dir := t.TempDir()
	count := filepath.Join(dir, "probes")
	stub := filepath.Join(dir, "passt")
	script := fmt.Sprintf("#!/bin/sh\ncase \"$1\" in --help|--version) echo \"$1\" >> %s;; esac\nexec %s \"$@\"\n", count, real)
	if err := os.WriteFile(stub, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOFTD_PASST", stub)
	status, _, stderr := w.run("", "--network", "passt", "-p", fmt.Sprintf("127.0.0.1:%d:9/udp", freePort(t, "udp")), "--", "true")
	if status != 0 {
		t.Fatalf("loftd -p …/udp -- true: status %d, stderr %q", status, stderr)
	}
	data, err := os.ReadFile(count)
	if err != nil {
		t.Fatalf("the stand-in passt was never probed: %v", err)
	}
	if helps := strings.Count(string(data), "--help"); helps != 1 {
		t.Errorf("passt answered --help %d times in one run (%q); want 1: the host probes, the plan carries the features", helps, data)
	}
}

// requireTCPPasst: the passt loftd picks (doctor's passt check) carries
// TCP into the guest.
func requireTCPPasst(t *testing.T) {
	t.Helper()
	out, _ := exec.Command(bins.loftd, "doctor", "--format", "json").Output()
	var doc struct {
		Checks []struct{ Name, Level, Detail string }
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("loftd doctor --format json: %v\n%s", err, out)
	}
	for _, c := range doc.Checks {
		if c.Name == "passt" && c.Level == "ok" {
			return
		}
		if c.Name == "passt" {
			testenv.Missing(t, "loftd's passt cannot publish TCP (%s): run scripts/fetch-passt as root (make deps does)", c.Detail)
		}
	}
	t.Fatalf("loftd doctor --format json has no passt check:\n%s", out)
}

// askUDP waits until the guest's echo server is bound (it creates
// /workspace/.udp-ready), then sends to the host port until it answers.
// CI once saw no answer for 130 s under load while the test passed alone:
// waiting for the server first tells a slow guest (no ready file: the
// test waits, up to the boot budget) from a broken UDP path (a bound
// server that never answers: the test fails, saying so). Each try uses a
// fresh socket, so no state passt keeps for one source port can carry a
// failure from one try to the next.
func askUDP(t *testing.T, w *world, port int) {
	t.Helper()
	ready := filepath.Join(w.workspace, ".udp-ready")
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("udp publish 127.0.0.1:%d: the guest's echo server was not up after 5 minutes", port)
		}
	}
	bound := time.Now()
	got, last := "", ""
	buf := make([]byte, 100)
	for tries := 0; time.Since(bound) < 2*time.Minute; tries++ {
		conn, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte("ping over udp"))
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := conn.Read(buf)
		conn.Close()
		if err == nil {
			if got = string(buf[:n]); got == "echo: ping over udp" {
				if tries > 0 {
					t.Logf("udp publish answered after %d tries, %v after the server was bound", tries+1, time.Since(bound).Round(time.Millisecond))
				}
				return
			}
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond) // a refusal comes at once: no busy loop
	}
	t.Errorf("udp publish 127.0.0.1:%d:9090/udp: the guest's server was bound, and for 2 minutes after that "+
		"the answer was %q (last error %q), want %q: the UDP path is at fault, not a slow guest",
		port, got, last, "echo: ping over udp")
}

// TestPublishPortInUse: a published host port that is taken fails before
// boot, naming the port.
func TestPublishPortInUse(t *testing.T) {
	w := newWorld(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	status, _, stderr := w.run("", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "--", "true")
	want := fmt.Sprintf("host port 127.0.0.1:%d/tcp is not free", port)
	if status == 0 || !strings.Contains(stderr, want) {
		t.Errorf("-p on a taken port: status %d, stderr %q; want failure naming %q", status, stderr, want)
	}
}

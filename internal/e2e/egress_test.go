package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/egress"
	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/internal/testnet"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

// Egress tests (issue 20): real VMs on loftd's policy network, run inside
// a test internet of network namespaces (internal/testnet): nothing leaves
// the machine. The guest's half is testdata/egressprobe, one line per
// probe.

// egressRun runs loftd ARGS -- sh -c SCRIPT in the test internet's client
// namespace (its resolver the test DNS) and returns stdout and stderr.
func egressRun(t *testing.T, w *world, tn *testnet.Net, args []string, script string) (string, string) {
	t.Helper()
	probe := filepath.Join(w.root, "bin", "egressprobe")
	if _, err := os.Stat(probe); err != nil {
		build := exec.Command("go", "build", "-o", probe, "./testdata/egressprobe")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build egressprobe: %v\n%s", err, out)
		}
	}
	c := w.cmd(append(args, "--", "sh", "-c", script)...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nc := tn.Command(ctx, c.Path, c.Args[1:]...)
	nc.Env = c.Env
	var out, errb bytes.Buffer
	nc.Stdout, nc.Stderr = &out, &errb
	if err := nc.Run(); err != nil {
		t.Fatalf("loftd %q: %v\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// probeLine is the output line of the probe "CMD ARGS".
func probeLine(out, probe string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, probe+": ") {
			return strings.TrimPrefix(l, probe+": ")
		}
	}
	return "(no line)"
}

type probeWant struct {
	probe string // "get https://allowed.test/", as the script runs it
	want  string // a substring of its line
	why   string
}

func checkProbes(t *testing.T, out, stderr string, wants []probeWant) {
	t.Helper()
	for _, w := range wants {
		if got := probeLine(out, w.probe); !strings.Contains(got, w.want) {
			t.Errorf("%s: egressprobe %s = %q, want %q\nstdout:\n%s\nstderr:\n%s", w.why, w.probe, got, w.want, out, stderr)
		}
	}
}

func probeScript(wants []probeWant) string {
	var s strings.Builder
	for _, w := range wants {
		fmt.Fprintf(&s, "egressprobe %s\n", w.probe)
	}
	return s.String()
}

// TestEgressAllowList: with --allow NAME the guest fetches the allowed name
// over HTTPS; a denied name is NXDOMAIN; a literal address never learned,
// another resolver, a spoofed SNI on a shared address, the host's loopback
// and a link-local server are all refused; the run ends with the denial
// summary on stderr.
func TestEgressAllowList(t *testing.T) {
	w := newWorld(t)
	tn := testnet.New(t)
	denied := tn.Addrs(testnet.Denied)[0]
	wants := []probeWant{
		{"get https://" + testnet.Allowed + "/", "status 200", "the allowed name over HTTPS"},
		{"resolve " + testnet.Denied, "no such host", "a denied name"},
		{"dns " + contract.NetDNS + " " + testnet.Denied, "answer rcode RCodeNameError", "a denied name is NXDOMAIN"},
		{"dial " + denied.String() + ":443", "refused", "a literal address never learned"},
		{"dns " + testnet.OtherDNSAddr.String() + " " + testnet.Allowed, "no answer", "DNS to another resolver"},
		{"dns " + contract.NetDNS + " " + testnet.Allowed, "answer rcode RCodeSuccess", "DNS to loftd's resolver"},
		{"get https://" + testnet.CDNA + "/", "status 200", "the allowed name on the shared address"},
		{"get https://" + testnet.CDNA + "/ " + testnet.CDNB, "error", "a spoofed SNI on the shared address"},
		{fmt.Sprintf("dial %s:%d", contract.NetGateway, tn.Loopback.Port()), "refused", "the host's loopback without --allow-host"},
		{"dial 169.254.169.254:80", "refused", "a link-local server"},
	}
	out, stderr := egressRun(t, w, tn, []string{"--debug", "--allow", testnet.Allowed, "--allow", testnet.CDNA}, probeScript(wants))
	checkProbes(t, out, stderr, wants)
	if seen := tn.Seen(testnet.Denied); len(seen) != 0 {
		t.Errorf("the denied host's servers saw requests: %+v", seen)
	}
	for _, e := range tn.Seen(testnet.CDNA) {
		if e.Host == testnet.CDNB || e.SNI == testnet.CDNB {
			t.Errorf("the CDN saw a request for %s: %+v", testnet.CDNB, e)
		}
	}
	// The summary names the first few; --debug logs each denial.
	if !strings.Contains(stderr, "loftd: egress policy blocked 8 connections or names: "+testnet.Denied+"/dns: name not allowed (3×)") {
		t.Errorf("stderr lacks the denial summary (8 denials, the denied name first):\n%s", stderr)
	}
	for _, want := range []string{string(egress.NotLearned), string(egress.NameMismatch), string(egress.HostLoopback), string(egress.LinkLocal), string(egress.UDPDenied)} {
		if !strings.Contains(stderr, fmt.Sprintf("reason=%q", want)) {
			t.Errorf("--debug logged no denial %q:\n%s", want, stderr)
		}
	}
}

// TestEgressDefaults: without rules the guest reaches public addresses by
// name but not a private (RFC 1918) or link-local one, nor the host's
// loopback; --allow-host opens the loopback, --allow CIDR a link-local
// range.
func TestEgressDefaults(t *testing.T) {
	w := newWorld(t)
	tn := testnet.New(t)
	internal := tn.Addrs(testnet.Internal)[0]
	loop := fmt.Sprintf("dial %s:%d", contract.NetGateway, tn.Loopback.Port())
	wants := []probeWant{
		{"get https://" + testnet.Denied + "/", "status 200", "a public name by default"},
		{"dial " + internal.String() + ":80", "refused", "a private address by default"},
		{"dial 169.254.169.254:80", "refused", "a link-local address by default"},
		{"dns " + testnet.OtherDNSAddr.String() + " " + testnet.Allowed, "no answer", "DNS to another resolver"},
		{loop, "refused", "the host's loopback by default"},
		// The stack is IPv4-only: a public IPv6 address goes nowhere.
		{"dial [" + tn.Addrs(testnet.Denied)[1].String() + "]:443", "error", "IPv6"},
	}
	out, stderr := egressRun(t, w, tn, nil, probeScript(wants))
	checkProbes(t, out, stderr, wants)
	if !strings.Contains(stderr, "loftd: egress policy blocked") {
		t.Errorf("no denial summary on stderr:\n%s", stderr)
	}
	opened := []probeWant{
		{loop, "answered HTTP/1.0 200", "the host's loopback with --allow-host"},
		{"get http://" + testnet.Metadata + "/", "status 200", "a link-local server with --allow 169.254.169.254/32"},
	}
	out, stderr = egressRun(t, w, tn, []string{"--allow-host", "--allow", "169.254.169.254/32"}, probeScript(opened))
	checkProbes(t, out, stderr, opened)
	if strings.Contains(stderr, "egress policy blocked") {
		t.Errorf("a run with nothing blocked printed a denial summary:\n%s", stderr)
	}
}

// TestEgressNetstackUnprivileged: loftd as root starts the netstack, which
// parses every frame the guest sends, and it runs as nobody, with
// no_new_privs and its seccomp filter, once set up.
func TestEgressNetstackUnprivileged(t *testing.T) {
	w := newWorld(t)
	pid, wait := startLong(t, w.cmd("--", "sh", "-c", longScript), w.workspace)
	procs, pids := passtsWith("XDG_STATE_HOME=" + w.state)
	if len(pids) != 1 {
		t.Fatalf("netstack processes of the run: %q, want one", procs)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pids[0]))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") && !(f[1] == "65534" && f[2] == "65534" && f[3] == "65534" && f[4] == "65534") {
			t.Errorf("netstack %s, want 65534 (nobody) for real, effective, saved and filesystem ids", line)
		}
		if len(f) >= 1 && f[0] == "Groups:" && len(f) > 1 {
			t.Errorf("netstack keeps supplementary groups: %s", line)
		}
		if len(f) == 2 && f[0] == "NoNewPrivs:" && f[1] != "1" {
			t.Errorf("netstack %s, want 1", line)
		}
		if len(f) == 2 && f[0] == "Seccomp:" && f[1] != "2" {
			t.Errorf("netstack %s, want 2 (a filter)", line)
		}
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	wait()
}

// TestEgressRootless: the policy network of an unprivileged user's loftd
// (its helper and netstack in the keep-id namespace): the allowed name over
// HTTPS, a denied name refused, the host's loopback refused, and the
// summary.
func TestEgressRootless(t *testing.T) {
	w := newRootlessWorld(t)
	tn := testnet.New(t)
	probe := filepath.Join(w.base, "egressprobe")
	build := exec.Command("go", "build", "-o", probe, "./testdata/egressprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build egressprobe: %v\n%s", err, out)
	}
	ref := rootfstest.Build(t, rootfstest.Spec{Dir: filepath.Join(w.base, "layout-egress"), Tag: "v1", Files: []rootfstest.File{
		{Path: "/bin/egressprobe", Mode: 0o755, HostPath: probe},
	}})
	if out, err := exec.Command("chmod", "-R", "a+rX", filepath.Join(w.base, "layout-egress")).CombinedOutput(); err != nil {
		t.Fatalf("chmod layout: %v %s", err, out)
	}
	wants := []probeWant{
		{"get https://" + testnet.Allowed + "/", "status 200", "the allowed name over HTTPS"},
		{"dns " + contract.NetDNS + " " + testnet.Denied, "answer rcode RCodeNameError", "a denied name is NXDOMAIN"},
		{fmt.Sprintf("dial %s:%d", contract.NetGateway, tn.Loopback.Port()), "refused", "the host's loopback"},
	}
	c := w.cmd("--image", ref, "--allow", testnet.Allowed, "--", "sh", "-c", probeScript(wants))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	setpriv := testenv.RequireCommand(t, "setpriv", "util-linux")
	nc := tn.Command(ctx, setpriv, append([]string{"--reuid", strconv.Itoa(w.uid), "--regid", strconv.Itoa(w.gid), "--clear-groups", "--", c.Path}, c.Args[1:]...)...)
	nc.Env, nc.Dir = c.Env, c.Dir
	var out, errb strings.Builder
	nc.Stdout, nc.Stderr = &out, &errb
	if err := nc.Run(); err != nil {
		t.Fatalf("rootless loftd: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	checkProbes(t, out.String(), errb.String(), wants)
	if !strings.Contains(errb.String(), "loftd: egress policy blocked 2 connections or names") {
		t.Errorf("no denial summary (2 denials) on stderr:\n%s", errb.String())
	}
}

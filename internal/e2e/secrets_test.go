package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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
	"github.com/loftd/loftd/egress/mitm"
	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/internal/testnet"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

// TestSecrets (issue 20): a real VM in the test internet with --secret for
// allowed.test and the test CA as --extra-ca. The guest sees only the
// placeholder; its own HTTPS client, verifying against the guest's trust
// store (the image's CA bundle, which the guest init extended), sends it to
// allowed.test, whose echo server sees the real value; sent to denied.test
// it is refused with a 403 and that server sees nothing of it, while a
// request without it reaches denied.test; a server the host does not trust
// is refused; the run's denial summary names the placeholder and the
// untrusted server.
func TestSecrets(t *testing.T) {
	w := newWorld(t)
	tn := testnet.New(t)
	buildTLSProbe(t, w)
	// An image bundle with one unrelated CA: the guest init appends to it.
	other, _, err := mitm.NewCA("an image's own CA")
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(w.root, "etc/ssl/certs/ca-certificates.crt")
	if err := os.MkdirAll(filepath.Dir(bundle), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundle, other.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	real := "real-" + hex.EncodeToString(b[:])
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte(real+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		`echo "env API_TOKEN=$API_TOKEN"`,
		`tlsprobe get https://` + testnet.Allowed + `/secret "Authorization: Bearer $API_TOKEN"`,
		`tlsprobe get https://` + testnet.Denied + `/secret "Authorization: Bearer $API_TOKEN"`,
		`tlsprobe get https://` + testnet.Denied + `/plain "X-Probe: plain"`,
		`tlsprobe get https://` + testnet.Untrusted + `/`,
		`echo "certs $(grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt)"`,
		`echo "vars node=$NODE_EXTRA_CA_CERTS ssl=${SSL_CERT_FILE:-unset}"`,
		`true`,
	}, "\n")
	out, stderr := egressRun(t, w, tn, []string{"--debug", "--secret", "API_TOKEN=@" + secretFile + ":" + testnet.Allowed, "--extra-ca", tn.CAFile}, script)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format+"\nstdout:\n%s\nstderr:\n%s", append(args, out, stderr)...)
	}

	placeholder := strings.TrimPrefix(lineWith(out, "env API_TOKEN="), "env API_TOKEN=")
	if !strings.HasPrefix(placeholder, "loftd-placeholder-") || strings.Contains(placeholder, real) {
		fail("the guest's API_TOKEN = %q, want a placeholder", placeholder)
	}
	e, status := echoOf(probeLine(out, "get https://"+testnet.Allowed+"/secret"))
	if status != "status 200" || e.Server != "allowed" || e.Headers.Get("Authorization") != "Bearer "+real {
		fail("allowed.test answered %s with %+v, want 200 and the real value in Authorization", status, e)
	}
	if got := probeLine(out, "get https://"+testnet.Denied+"/secret"); !strings.HasPrefix(got, "status 403") || !strings.Contains(got, "API_TOKEN") {
		fail("the placeholder to denied.test: %q, want a 403 naming API_TOKEN", got)
	}
	if e, status := echoOf(probeLine(out, "get https://"+testnet.Denied+"/plain")); status != "status 200" || e.Headers.Get("X-Probe") != "plain" {
		fail("denied.test without the placeholder: %s %+v, want 200 through the interception", status, e)
	}
	if got := probeLine(out, "get https://"+testnet.Untrusted+"/"); !strings.HasPrefix(got, "error") {
		fail("untrusted.test: %q, want a TLS error", got)
	}
	// The image's CA, the interception CA, the test CA (--extra-ca).
	if got := lineWith(out, "certs "); got != "certs 3" {
		fail("the image's bundle: %q, want 3 certificates", got)
	}
	if got := lineWith(out, "vars "); got != "vars node="+contract.TrustPath+" ssl=unset" {
		fail("trust variables: %q, want NODE_EXTRA_CA_CERTS only (the image has a bundle)", got)
	}
	for _, s := range tn.Seen(testnet.Denied) {
		for _, v := range s.Headers {
			if strings.Contains(strings.Join(v, " "), placeholder) || strings.Contains(strings.Join(v, " "), real) {
				fail("denied.test saw the secret or its placeholder: %+v", s)
			}
		}
	}
	if n := len(tn.Seen(testnet.Denied)); n != 1 {
		fail("denied.test saw %d requests, want 1 (the one without the placeholder)", n)
	}
	if n := len(tn.Seen(testnet.Untrusted)); n != 0 {
		fail("untrusted.test saw %d requests through a refused handshake", n)
	}
	for _, reason := range []egress.Reason{egress.PlaceholderOut, mitm.UpstreamUntrusted} {
		if !strings.Contains(stderr, string(reason)) {
			fail("stderr does not report %q", reason)
		}
	}
	if !strings.Contains(stderr, "loftd: egress policy blocked") {
		fail("no denial summary on stderr")
	}
}

// buildTLSProbe puts the static tlsprobe into the world's root.
func buildTLSProbe(t *testing.T, w *world) {
	t.Helper()
	probe := filepath.Join(w.root, "bin", "tlsprobe")
	build := exec.Command("go", "build", "-o", probe, "./testdata/tlsprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build tlsprobe: %v\n%s", err, out)
	}
}

// lineWith is the first line of out that starts with prefix ("" if none).
func lineWith(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// echoOf splits a tlsprobe line "status N body JSON" into the echo and
// "status N".
func echoOf(line string) (testnet.Echo, string) {
	status, body, _ := strings.Cut(line, " body ")
	var e testnet.Echo
	_ = json.Unmarshal([]byte(body), &e)
	return e, status
}

// TestSecretsRootless: the same, rootless, with the secret and the extra CA
// from the config file ([secrets.NAME], [tls] extra_ca), on an image
// without any CA bundle: the guest init points SSL_CERT_FILE at the host's
// CAs, and the guest's client verifies the interception with them.
func TestSecretsRootless(t *testing.T) {
	w := newRootlessWorld(t)
	tn := testnet.New(t)
	probe := filepath.Join(w.base, "tlsprobe")
	build := exec.Command("go", "build", "-o", probe, "./testdata/tlsprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build tlsprobe: %v\n%s", err, out)
	}
	ref := rootfstest.Build(t, rootfstest.Spec{Dir: filepath.Join(w.base, "layout-tls"), Tag: "v1", Files: []rootfstest.File{
		{Path: "/bin/tlsprobe", Mode: 0o755, HostPath: probe},
	}})
	if out, err := exec.Command("chmod", "-R", "a+rX", filepath.Join(w.base, "layout-tls")).CombinedOutput(); err != nil {
		t.Fatalf("chmod layout: %v %s", err, out)
	}
	// The user's files: the secret (theirs, 0600), the CA, the config.
	real := "rootless-" + hex.EncodeToString([]byte(t.Name()))[:16]
	secret := filepath.Join(w.home, "token")
	ca := filepath.Join(w.home, "test-ca.pem")
	cfg := filepath.Join(w.home, ".config", "loftd", "loftd.toml")
	toml := "[secrets.API_TOKEN]\nfile = \"" + secret + "\"\nhosts = [\"" + testnet.Allowed + "\"]\n[tls]\nextra_ca = [\"" + ca + "\"]\n"
	for _, f := range []struct {
		path string
		data []byte
	}{{secret, []byte(real)}, {ca, tn.CAPEM}, {cfg, []byte(toml)}} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", strconv.Itoa(w.uid)+":"+strconv.Itoa(w.gid), w.home).CombinedOutput(); err != nil {
		t.Fatalf("chown home: %v %s", err, out)
	}
	script := strings.Join([]string{
		`echo "env API_TOKEN=$API_TOKEN"`,
		`tlsprobe get https://` + testnet.Allowed + `/secret "X-Api-Key: $API_TOKEN"`,
		`echo "vars ssl=${SSL_CERT_FILE:-unset}"`,
		`true`,
	}, "\n")
	// As the user, in the test internet's client namespace: ip netns
	// exec needs root, setpriv then drops to the user.
	c := w.cmd("--image", ref, "--", "sh", "-c", script)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	setpriv := testenv.RequireCommand(t, "setpriv", "util-linux")
	nc := tn.Command(ctx, setpriv, append([]string{"--reuid", strconv.Itoa(w.uid), "--regid", strconv.Itoa(w.gid), "--clear-groups", "--", c.Path}, c.Args[1:]...)...)
	nc.Env, nc.Dir = c.Env, c.Dir
	var out, errb strings.Builder
	nc.Stdout, nc.Stderr = &out, &errb
	if err := nc.Run(); err != nil {
		t.Fatalf("rootless loftd with a secret: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format+"\nstdout:\n%s\nstderr:\n%s", append(args, out.String(), errb.String())...)
	}
	if p := lineWith(out.String(), "env API_TOKEN="); !strings.HasPrefix(p, "env API_TOKEN=loftd-placeholder-") {
		fail("the guest's API_TOKEN: %q, want a placeholder", p)
	}
	e, status := echoOf(probeLine(out.String(), "get https://"+testnet.Allowed+"/secret"))
	if status != "status 200" || e.Headers.Get("X-Api-Key") != real {
		fail("allowed.test answered %s with %+v, want 200 and the real value in X-Api-Key", status, e)
	}
	if got := lineWith(out.String(), "vars "); got != "vars ssl="+contract.TrustPath {
		fail("SSL_CERT_FILE in an image without a bundle: %q, want %s", got, contract.TrustPath)
	}
	// The CA was made once, in the user's state, its key theirs and 0600.
	keys, _ := filepath.Glob(filepath.Join(w.home, ".local", "state", "loftd", "*", "*", mitm.KeyFile))
	if len(keys) != 1 {
		fail("interception CA keys under the user's state: %q, want one", keys)
		return
	}
	fi, err := os.Stat(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o600 || int(st.Uid) != w.uid {
		fail("%s: mode %v owner %d, want 0600 and the user's", keys[0], fi.Mode().Perm(), st.Uid)
	}
}

// TestSecretsAllowList: in allow-list mode (--allow NAME) the interception
// runs after the policy's name check: the allowed name (on the shared CDN
// address) gets the value, and a name not allowed does not even resolve,
// so no placeholder travels there.
func TestSecretsAllowList(t *testing.T) {
	w := newWorld(t)
	tn := testnet.New(t)
	buildTLSProbe(t, w)
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte("allow-list-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	// No bundle in this root: SSL_CERT_FILE carries the CAs.
	script := strings.Join([]string{
		`tlsprobe get https://` + testnet.CDNA + `/secret "Authorization: Bearer $API_TOKEN"`,
		`tlsprobe get https://` + testnet.Denied + `/secret "Authorization: Bearer $API_TOKEN"`,
		`true`,
	}, "\n")
	out, stderr := egressRun(t, w, tn, []string{"--allow", testnet.CDNA, "--secret", "API_TOKEN=@" + secretFile + ":" + testnet.CDNA, "--extra-ca", tn.CAFile}, script)
	if e, status := echoOf(probeLine(out, "get https://"+testnet.CDNA+"/secret")); status != "status 200" || e.Headers.Get("Authorization") != "Bearer allow-list-value" {
		t.Errorf("cdn-a.test answered %s with %+v, want 200 and the real value\nstdout:\n%s\nstderr:\n%s", status, e, out, stderr)
	}
	if got := probeLine(out, "get https://"+testnet.Denied+"/secret"); !strings.Contains(got, "no such host") {
		t.Errorf("denied.test in allow-list mode: %q, want no such host\nstdout:\n%s\nstderr:\n%s", got, out, stderr)
	}
	if n := len(tn.Seen(testnet.Denied)); n != 0 {
		t.Errorf("denied.test saw %d requests", n)
	}
}

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/egress"
	"github.com/loftd/loftd/egress/mitm"
	"github.com/loftd/loftd/internal/testnet"
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

package guestinit

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loftd/loftd/contract"
)

// TestAddTrust runs the trust step on image roots made of real files: the
// host's CAs are appended once to each real bundle (links followed, not
// out of the image), dropped where update-ca-certificates looks, and the
// environment points at them where the image has no bundle.
func TestAddTrust(t *testing.T) {
	const certs = "-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n"
	const orig = "-----BEGIN CERTIFICATE-----\nSYSTEM\n-----END CERTIFICATE-----" // no final newline
	type file struct{ path, content, link string }
	tests := []struct {
		name     string
		files    []file
		hostEnv  []string
		bundles  map[string]string // path → content after the step
		anchor   bool
		wantEnv  []string
		noEnvFor []string
	}{
		{
			name: "debian with an alpine-style link",
			files: []file{
				{path: "/etc/ssl/certs/ca-certificates.crt", content: orig},
				{path: "/etc/ssl/cert.pem", link: "certs/ca-certificates.crt"},
				{path: "/usr/local/share/ca-certificates/"},
			},
			bundles:  map[string]string{"/etc/ssl/certs/ca-certificates.crt": orig + "\n" + certs},
			anchor:   true,
			wantEnv:  []string{"NODE_EXTRA_CA_CERTS=" + contract.TrustPath},
			noEnvFor: []string{"SSL_CERT_FILE", "CURL_CA_BUNDLE"},
		},
		{
			name:    "no bundle",
			files:   nil,
			hostEnv: []string{"SSL_CERT_FILE=/mine.pem"},
			wantEnv: []string{"SSL_CERT_FILE=/mine.pem", "NODE_EXTRA_CA_CERTS=" + contract.TrustPath,
				"CURL_CA_BUNDLE=" + contract.TrustPath, "REQUESTS_CA_BUNDLE=" + contract.TrustPath},
		},
		{
			name: "a bundle link out of the image is not written through",
			files: []file{
				{path: "/workspace/evil.pem", content: orig},
				{path: "/etc/ssl/certs/ca-certificates.crt", link: "../../../workspace/evil.pem"},
			},
			bundles: map[string]string{"/workspace/evil.pem": orig},
			wantEnv: []string{"SSL_CERT_FILE=" + contract.TrustPath},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			all := append(tt.files, file{path: contract.TrustPath, content: certs})
			for _, f := range all {
				p := filepath.Join(root, f.path)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				switch {
				case strings.HasSuffix(f.path, "/"):
					err := os.MkdirAll(p, 0o755)
					if err != nil {
						t.Fatal(err)
					}
				case f.link != "":
					if err := os.Symlink(f.link, p); err != nil {
						t.Fatal(err)
					}
				default:
					if err := os.WriteFile(p, []byte(f.content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			env := slices.Clone(tt.hostEnv)
			e := &enter{sys: System{SysRoot: root, Environ: func() []string { return env }, SetEnv: func(v []string) { env = v }}}
			for range 2 { // a second boot on the same root adds nothing
				if err := e.addTrust(); err != nil {
					t.Fatal(err)
				}
			}
			for p, want := range tt.bundles {
				got, _ := os.ReadFile(filepath.Join(root, p))
				if string(got) != want {
					t.Errorf("%s = %q, want %q", p, got, want)
				}
			}
			got, err := os.ReadFile(filepath.Join(root, "/usr/local/share/ca-certificates/loftd.crt"))
			if tt.anchor && (err != nil || string(got) != certs) {
				t.Errorf("anchor = %q, %v, want the certificates", got, err)
			}
			for _, kv := range tt.wantEnv {
				if !slices.Contains(env, kv) {
					t.Errorf("environment %q lacks %s", env, kv)
				}
			}
			for _, name := range tt.noEnvFor {
				for _, kv := range env {
					if strings.HasPrefix(kv, name+"=") {
						t.Errorf("environment sets %s with a bundle in the image", kv)
					}
				}
			}
		})
	}
}

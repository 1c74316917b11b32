package e2e

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containers/image/v5/types"
	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs/rootfstest"
	"golang.org/x/crypto/bcrypt"
)

// registry serves a Docker registry (Debian's docker-registry) on the
// loopback that wants basic auth, and returns its host:port.
func registry(t *testing.T, user, pass string) string {
	t.Helper()
	bin := testenv.RequireCommand(t, "docker-registry", "docker-registry")
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\nauth:\n  htpasswd:\n    realm: loftd-test\n    path: %s\n",
		filepath.Join(dir, "data"), addr, filepath.Join(dir, "htpasswd"))
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry on %s did not answer 401 on /v2/ (last error %v):\n%s", addr, err, log.String())
		}
	}
}

// TestAuthFile pulls from a registry that wants credentials: refused
// without them, pulled with --authfile (a Kubernetes pull secret's
// .dockerconfigjson), with $REGISTRY_AUTH_FILE and with [image] authfile.
func TestAuthFile(t *testing.T) {
	w := newWorld(t)
	const user, pass = "agent", "s3cret-pass"
	addr := registry(t, user, pass)
	ref := "docker://" + addr + "/loftd/marker:v1"
	rootfstest.CopyTo(t, markerImage(t, "from the registry\n"), ref, &types.SystemContext{
		DockerAuthConfig:            &types.DockerAuthConfig{Username: user, Password: pass},
		DockerInsecureSkipTLSVerify: types.OptionalBoolTrue,
	})
	// The registry is plain HTTP on the loopback: registries.conf says so.
	conf := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), ".dockerconfigjson")
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	if err := os.WriteFile(secret, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, addr, auth)), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "auth.json")
	bad := base64.StdEncoding.EncodeToString([]byte(user + ":not-the-password"))
	if err := os.WriteFile(wrong, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, addr, bad)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgDir := filepath.Join(w.state, "config")
	tests := []struct {
		name       string
		flags, env []string
		config     string
		want       int
		wantErr    string
	}{
		{name: "no credentials: the error names the fix", want: 125, wantErr: "give credentials with --authfile"},
		{name: "wrong credentials: the file is named", flags: []string{"--authfile", wrong}, want: 125, wantErr: "the credentials in " + wrong + " were refused"},
		{name: "--authfile", flags: []string{"--authfile", secret}},
		{name: "REGISTRY_AUTH_FILE", env: []string{"REGISTRY_AUTH_FILE=" + secret}},
		{name: "[image] authfile", config: fmt.Sprintf("[image]\nauthfile = %q\n", secret)},
		{name: "a missing file is named", flags: []string{"--authfile", secret + ".missing"}, want: 125, wantErr: "registry auth file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.MkdirAll(filepath.Join(cfgDir, "loftd"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cfgDir, "loftd", "loftd.toml"), []byte(tt.config), 0o644); err != nil {
				t.Fatal(err)
			}
			args := append(append([]string{"--vmm", "qemu", "--image", ref, "--pull-latest"}, tt.flags...), "--", "cat", "/marker")
			c := w.cmd(args...)
			c.Env = append(append(c.Env, "CONTAINERS_REGISTRIES_CONF="+conf, "REGISTRY_AUTH_FILE="), tt.env...)
			var out, errb strings.Builder
			c.Stdout, c.Stderr = &out, &errb
			_ = c.Run()
			status := c.ProcessState.ExitCode()
			if status != tt.want || !strings.Contains(strings.ToLower(errb.String()), strings.ToLower(tt.wantErr)) {
				t.Fatalf("loftd %q = %d; want %d and stderr with %q\nstderr:\n%s", args, status, tt.want, tt.wantErr, errb.String())
			}
			if tt.want == 0 && out.String() != "from the registry\n" {
				t.Errorf("stdout = %q, want the image's marker", out.String())
			}
		})
	}
}

package session

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loftd/loftd/launch"
	"github.com/spf13/pflag"
)

// A workspace's [network.workspaces."PATH"] entry adds its opt-ins to the
// run in that workspace (matched with links resolved), and only there.
func TestWorkspaceEgress(t *testing.T) {
	proj := t.TempDir()
	link := filepath.Join(t.TempDir(), "proj-link")
	if err := os.Symlink(proj, link); err != nil {
		t.Fatal(err)
	}
	p := writeConfig(t, fmt.Sprintf(`[network]
allow = ["10.1.0.0/16"]
[network.workspaces.%q]
allow = ["registry.internal", "*.corp.example"]
allow_host = true
`, link))
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	o := &Options{Network: launch.NetworkEgress, Allow: slices.Clone(cfg.Network.Allow)}
	if err := o.addWorkspaceEgress(cfg, proj); err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.1.0.0/16", "registry.internal", "*.corp.example"}; !slices.Equal(o.Allow, want) || !o.AllowHost {
		t.Errorf("in the workspace: allow %q, allow_host %v; want %q, true", o.Allow, o.AllowHost, want)
	}
	other := &Options{Network: launch.NetworkEgress}
	if err := other.addWorkspaceEgress(cfg, t.TempDir()); err != nil || len(other.Allow) != 0 || other.AllowHost {
		t.Errorf("another workspace: allow %q, allow_host %v, %v; want nothing added", other.Allow, other.AllowHost, err)
	}
	passt := &Options{Network: launch.NetworkPasst}
	if err := passt.addWorkspaceEgress(cfg, proj); err == nil || !strings.Contains(err.Error(), "enforces no policy") {
		t.Errorf("--network passt in the workspace: %v, want a refusal", err)
	}
}

func TestWorkspaceEgressErrors(t *testing.T) {
	for _, tt := range []struct{ text, want string }{
		{"[network.workspaces.\"rel/proj\"]\nallow = [\"a.example\"]\n", "absolute path"},
		{"[network.workspaces.\"/p\"]\nallow = [\"a b\"]\n", `network.workspaces."/p".allow`},
		{"[network.workspaces.\"/p\"]\nmode = \"passt\"\n", "unknown key"},
	} {
		if _, err := LoadConfig(writeConfig(t, tt.text)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadConfig(%q) = %v, want an error containing %q", tt.text, err, tt.want)
		}
	}
}

// --allow and --allow-host parse once, the config's first, and need the
// egress network.
func TestParseEgress(t *testing.T) {
	cfg := &Config{Network: NetworkConfig{Allow: []string{"*.example.com"}}}
	for _, tt := range []struct {
		args    []string
		want    []string
		host    bool
		wantErr string
	}{
		{nil, []string{"*.example.com"}, false, ""},
		{[]string{"--allow", "10.0.0.0/8", "--allow-host"}, []string{"*.example.com", "10.0.0.0/8"}, true, ""},
		{[]string{"--allow", "ex ample"}, nil, false, `--allow "ex ample": not a host name`},
		{[]string{"--network", "passt", "--allow-host"}, nil, false, "enforces no policy"},
	} {
		o, err := parseOptions(t, cfg, tt.args)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("options(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(o.Allow, tt.want) || o.AllowHost != tt.host {
			t.Errorf("options(%q) = allow %q, host %v, %v; want %q, %v", tt.args, o.Allow, o.AllowHost, err, tt.want, tt.host)
		}
	}
}

func parseOptions(t *testing.T, cfg *Config, args []string) (*Options, error) {
	t.Helper()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	r := Flags{host: func() (uint64, int) { return 64 << 30, 8 }}
	r.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return r.Options(fs, cfg, nil)
}

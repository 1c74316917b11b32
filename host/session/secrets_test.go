package session

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/egress/mitm"
	"github.com/spf13/pflag"
)

// TestSecretOptions: --secret and [secrets] merge (a flag replaces the
// config's file and, when it names any, its hosts), files are made
// absolute and read once, and every mistake is refused with its fix.
func TestSecretOptions(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("ghp_x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("v"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgGH := Config{Secrets: map[string]SecretConfig{"GH": {File: token, Hosts: []string{"api.github.com"}}}, path: "/c/loftd.toml"}
	tests := []struct {
		desc    string
		args    []string
		cfg     Config
		want    []SecretSpec
		wantErr string
	}{
		{"flag", []string{"--secret", "GH=@" + token + ":api.github.com,*.github.com"}, Config{},
			[]SecretSpec{{"GH", token, []string{"api.github.com", "*.github.com"}}}, ""},
		{"config", nil, cfgGH, []SecretSpec{{"GH", token, []string{"api.github.com"}}}, ""},
		{"flag replaces the config's file, keeps its hosts", []string{"--secret", "GH=@" + other}, cfgGH,
			[]SecretSpec{{"GH", other, []string{"api.github.com"}}}, ""},
		{"literal value", []string{"--secret", "GH=ghp_x"}, Config{}, nil, "must come from a file"},
		{"no hosts", []string{"--secret", "GH=@" + token}, Config{}, nil, "no host"},
		{"missing file", []string{"--secret", "GH=@" + filepath.Join(dir, "nope") + ":a.example"}, Config{}, nil, "no such file"},
		{"reserved", []string{"--secret", "LOFTD_X=@" + token + ":a.example"}, Config{}, nil, "reserved"},
		{"also --env", []string{"--secret", "GH=@" + token + ":a.example", "-e", "GH=1"}, Config{}, nil, "also passed with --env"},
		{"passt", []string{"--secret", "GH=@" + token + ":a.example", "--network", "passt"}, Config{}, nil, "needs loftd's egress network"},
		{"config without file", nil, Config{Secrets: map[string]SecretConfig{"GH": {Hosts: []string{"a.example"}}}, path: "/c/loftd.toml"}, nil, "[secrets.GH]: no file"},
		{"relative file in the config", nil, Config{Secrets: map[string]SecretConfig{"GH": {File: "token", Hosts: []string{"a.example"}}}, path: "/c/loftd.toml"}, nil, "want an absolute path"},
		{"bad extra CA", []string{"--extra-ca", ca}, Config{}, nil, "--extra-ca " + ca + ": no PEM certificate"},
		{"bad extra CA in config", nil, Config{TLS: TLSConfig{ExtraCA: []string{ca}}, path: "/c/loftd.toml"}, nil, "/c/loftd.toml: [tls] extra_ca"},
	}
	for _, tt := range tests {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		r := Flags{host: func() (uint64, int) { return 64 << 30, 8 }}
		r.Register(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		o, err := r.Options(fs, &tt.cfg, nil)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: options(%q) error = %v, want %q", tt.desc, tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: options(%q): %v", tt.desc, tt.args, err)
			continue
		}
		if !reflect.DeepEqual(o.Secrets, tt.want) {
			t.Errorf("%s: secrets = %+v, want %+v", tt.desc, o.Secrets, tt.want)
		}
	}
}

func TestParseSecretFlag(t *testing.T) {
	tests := []struct {
		in         string
		name, file string
		hosts      []string
		wantErr    bool
	}{
		{"T=@/f", "T", "/f", nil, false},
		{"T=@/f:a.example", "T", "/f", []string{"a.example"}, false},
		{"T=@/a:b/f:a.example, *.b.example", "T", "/a:b/f", []string{"a.example", "*.b.example"}, false},
		{"T=value", "", "", nil, true},
		{"=@/f", "", "", nil, true},
		{"T=@", "", "", nil, true},
	}
	for _, tt := range tests {
		name, file, hosts, err := ParseSecretFlag(tt.in)
		if (err != nil) != tt.wantErr || name != tt.name || file != tt.file || !reflect.DeepEqual(hosts, tt.hosts) {
			t.Errorf("ParseSecretFlag(%q) = %q, %q, %q, %v", tt.in, name, file, hosts, err)
		}
	}
}

// TestSecretsConfig: [secrets.NAME] and [tls] decode, and a value written
// in the file itself (value = ...) is an unknown key, not a secret.
func TestSecretsConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "loftd.toml")
	good := "[secrets.GH]\nfile = \"/run/gh\"\nhosts = [\"api.github.com\"]\n[tls]\nextra_ca = [\"/etc/corp.pem\"]\n"
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]SecretConfig{"GH": {File: "/run/gh", Hosts: []string{"api.github.com"}}}
	if !reflect.DeepEqual(cfg.Secrets, want) || !reflect.DeepEqual(cfg.TLS.ExtraCA, []string{"/etc/corp.pem"}) {
		t.Errorf("LoadConfig = secrets %+v, tls %+v", cfg.Secrets, cfg.TLS)
	}
	if err := os.WriteFile(path, []byte("[secrets.GH]\nvalue = \"ghp_x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "unknown key secrets.GH.value") {
		t.Errorf("LoadConfig with a value in the file = %v, want unknown key secrets.GH.value", err)
	}
}

// TestPrepareTrust: the session makes the workspace's CA once, puts it and
// the extra CAs on the task root, gives the guest NAME=placeholder, and
// the plan's interception names the file, never the value.
func TestPrepareTrust(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("the-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extraCA, _, err := mitm.NewCA("extra")
	if err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "extra.pem")
	if err := os.WriteFile(extra, extraCA.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	s := &session{opts: &Options{Secrets: []SecretSpec{{Name: "GH", File: token, Hosts: []string{"api.github.com"}}}, ExtraCA: []string{extra}},
		root: filepath.Join(dir, "root")}
	s.ws.Dir = filepath.Join(dir, "ws")
	for _, d := range []string{s.root, s.ws.Dir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.prepareTrust(); err != nil {
		t.Fatal(err)
	}
	ca, err := mitm.LoadCA(s.ws.Dir)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := os.ReadFile(filepath.Join(s.root, contract.TrustPath))
	if err != nil || string(trust) != string(ca.PEM)+string(extraCA.PEM) {
		t.Errorf("%s = %q, %v; want the workspace CA then the extra CA", contract.TrustPath, trust, err)
	}
	if !s.trust || !s.guest().Trust {
		t.Error("the guest is not told to add the CAs")
	}
	if len(s.secretEnv) != 1 || !strings.HasPrefix(s.secretEnv[0], "GH=loftd-placeholder-") {
		t.Errorf("guest env = %q, want GH=<placeholder>", s.secretEnv)
	}
	in := s.intercept
	if in == nil || in.CADir != s.ws.Dir || len(in.Secrets) != 1 || in.Secrets[0].File != token ||
		"GH="+in.Secrets[0].Placeholder != s.secretEnv[0] || !reflect.DeepEqual(in.ExtraCA, []string{extra}) {
		t.Errorf("plan interception = %+v", in)
	}
	if b, _ := json.Marshal(in); strings.Contains(string(b), "the-value") {
		t.Errorf("the plan carries the value: %s", b)
	}
}

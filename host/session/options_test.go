package session

import (
	"reflect"
	"strings"
	"testing"

	"github.com/loftd/loftd/launch"
	"github.com/spf13/pflag"
)

func TestGuestEnv(t *testing.T) {
	host := []string{"HOME=/home/u", "CODER_A=1", "CODER_B=2", "CODERX=3", "TERM=xterm"}
	tests := []struct {
		specs []string
		want  []string
	}{
		{specs: []string{"A=1"}, want: []string{"A=1"}},
		{specs: []string{"HOME"}, want: []string{"HOME=/home/u"}},
		{specs: []string{"MISSING"}, want: nil},
		{specs: []string{"CODER_*"}, want: []string{"CODER_A=1", "CODER_B=2"}},
		{specs: []string{"CODER_*", "CODER_A=override"}, want: []string{"CODER_A=override", "CODER_B=2"}},
		{specs: []string{"X=", "X=2"}, want: []string{"X=2"}},
	}
	for _, tt := range tests {
		if got := GuestEnv(tt.specs, host); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("GuestEnv(%q) = %q, want %q", tt.specs, got, tt.want)
		}
	}
}

func TestOptionsPrecedence(t *testing.T) {
	cfg := &Config{VM: VMConfig{Mem: 4, CPUs: 2, VMM: "qemu"}, Image: ImageConfig{Default: "cfg-image"}, Env: EnvConfig{Pass: []string{"A"}}}
	tests := []struct {
		args []string
		want func(o *Options) bool
		desc string
	}{
		{nil, func(o *Options) bool {
			return o.Mem == 4096 && o.CPUs == 2 && o.VMM == launch.VMMQEMU && o.Image == "cfg-image" && o.Network == launch.NetworkEgress
		}, "config values without flags"},
		{[]string{"--mem", "8", "--cpus", "1", "--vmm", "krun"}, func(o *Options) bool { return o.Mem == 8192 && o.CPUs == 1 && o.VMM == launch.VMMKrun }, "flags win"},
		{[]string{"--network", "none"}, func(o *Options) bool { return o.Network == launch.NetworkNone && o.Mem == 4096 }, "--network parsed"},
		{[]string{"--tsi"}, func(o *Options) bool { return o.Network == launch.NetworkTSI }, "--tsi is network tsi"},
		{[]string{"--image", "flag-image"}, func(o *Options) bool { return o.Image == "flag-image" }, "--image wins"},
		{[]string{"-e", "B"}, func(o *Options) bool { return reflect.DeepEqual(o.Env, []string{"A", "B"}) }, "env adds to config"},
		{nil, func(o *Options) bool { return !o.LiveMounts }, "tool state overlaid by default"},
		{[]string{"--live-mounts"}, func(o *Options) bool { return o.LiveMounts }, "--live-mounts opts in"},
	}
	for _, tt := range tests {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		// A fixed host, so the config value 2 is valid on a one-CPU machine too.
		r := Flags{host: func() (uint64, int) { return 64 << 30, 8 }}
		r.Register(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		o, err := r.Options(fs, cfg, nil)
		if err != nil || !tt.want(o) {
			t.Errorf("%s: options(%q) = %+v, %v", tt.desc, tt.args, o, err)
		}
	}
}

// TestOptionsHostLimits: --mem and --cpus are checked against the host
// (and libkrun's vCPU limit) before any VM sees them.
func TestOptionsHostLimits(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		args    []string
		cfg     Config
		mem     uint64
		cpus    int
		wantErr string
	}{
		{[]string{"--mem", "16", "--cpus", "8"}, Config{}, 16 * gib, 8, ""},
		{[]string{"--mem", "17"}, Config{}, 16*gib + gib/2, 8, "--mem 17: more than the 16 GiB of RAM this host (or its cgroup, or LOFTD_MEMORY) allows"},
		{[]string{"--cpus", "9"}, Config{}, 16 * gib, 8, "--cpus 9: more than the 8 CPUs this host (or its cgroup, or LOFTD_CPUS) allows"},
		{[]string{"--cpus", "256"}, Config{}, 16 * gib, 512, "--cpus 256: more than the 255 vCPUs"},
		{nil, Config{VM: VMConfig{Mem: 1 << 62}, path: "/c/loftd.toml"}, 16 * gib, 8, "/c/loftd.toml: [vm] mem 4611686018427387904: more than the 16 GiB"},
		{nil, Config{VM: VMConfig{CPUs: 9}, path: "/c/loftd.toml"}, 16 * gib, 8, "/c/loftd.toml: [vm] cpus 9"},
	}
	for _, tt := range tests {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		r := Flags{host: func() (uint64, int) { return tt.mem, tt.cpus }}
		r.Register(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		_, err := r.Options(fs, &tt.cfg, nil)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("options(%q, %+v) on a %d-byte, %d-CPU host: error %v, want %q", tt.args, tt.cfg.VM, tt.mem, tt.cpus, err, tt.wantErr)
		}
	}
}

func TestCheckEnvSpecReserved(t *testing.T) {
	for _, tt := range []struct {
		spec string
		ok   bool
	}{
		{"LOFTD_MODE=shell", false}, {"LOFTD_ROOT", false}, {"LOFTD_*", false}, {"LOFTD*", false},
		{"LOFTDX=1", true}, {"MY_LOFTD_MODE=1", true}, {"L*", true}, {"HOME", true},
	} {
		if err := checkEnvSpec(tt.spec); (err == nil) != tt.ok {
			t.Errorf("checkEnvSpec(%q) = %v, want ok %v", tt.spec, err, tt.ok)
		}
	}
	// A prefix that covers LOFTD_ does not carry the host's LOFTD_* in.
	if got := GuestEnv([]string{"L*"}, []string{"LOFTD_MODE=x", "LANG=C"}); !reflect.DeepEqual(got, []string{"LANG=C"}) {
		t.Errorf("GuestEnv(L*) = %q, want [LANG=C]", got)
	}
}

// TestOptionsLiveMounts: the live tool-state share is an opt-in, from the
// config or the flag (issue 17, item 6).
func TestOptionsLiveMounts(t *testing.T) {
	tests := []struct {
		config bool
		args   []string
		want   bool
	}{
		{false, nil, false},
		{true, nil, true},
		{false, []string{"--live-mounts"}, true},
	}
	for _, tt := range tests {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		r := Flags{host: func() (uint64, int) { return 64 << 30, 8 }}
		r.Register(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		o, err := r.Options(fs, &Config{Agentbox: AgentboxConfig{LiveMounts: tt.config}}, nil)
		if err != nil || o.LiveMounts != tt.want {
			t.Errorf("live_mounts = %v, args %q: LiveMounts %v, %v; want %v", tt.config, tt.args, o != nil && o.LiveMounts, err, tt.want)
		}
	}
}

// TestOptionsReview: --review beats [workspace] review and agentbox's
// [agentbox] review, which the loftd profile ignores.
func TestOptionsReview(t *testing.T) {
	tests := []struct {
		profile      string
		ws, agentbox bool
		args         []string
		want         bool
	}{
		{"loftd", false, false, nil, false},
		{"loftd", true, false, nil, true},
		{"loftd", false, true, nil, false},
		{"agentbox", false, true, nil, true},
		{"agentbox", false, true, []string{"--review=false"}, false},
		{"loftd", true, false, []string{"--review=false"}, false},
		{"loftd", false, false, []string{"--review"}, true},
	}
	for _, tt := range tests {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		r := Flags{host: func() (uint64, int) { return 64 << 30, 8 }}
		r.Register(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		cfg := &Config{Workspace: WorkspaceConfig{Review: tt.ws}, Agentbox: AgentboxConfig{Review: tt.agentbox}}
		o, err := r.Options(fs, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		o.Profile = tt.profile
		o.profileReview(cfg)
		if o.Review != tt.want {
			t.Errorf("%s, [workspace] review %v, [agentbox] review %v, args %q: Review %v, want %v", tt.profile, tt.ws, tt.agentbox, tt.args, o.Review, tt.want)
		}
	}
}

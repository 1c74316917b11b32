package host

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/loftd/loftd/launch"
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

// runCLI runs the CLI in-process with a private HOME and config dir.
func runCLI(t *testing.T, config string, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	home := t.TempDir()
	if config != "" {
		dir := filepath.Join(home, ".config", "loftd")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "loftd.toml"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb strings.Builder
	e := &env{prog: "loftd", stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string {
			if k == "HOME" {
				return home
			}
			return ""
		}}
	e.log = newLogger(&errb, false)
	status = e.main(args)
	return status, out.String(), errb.String()
}

func TestCLIUsageErrors(t *testing.T) {
	tests := []struct {
		args    []string
		config  string
		wantErr string
	}{
		{args: []string{"--no-such-flag"}, wantErr: "unknown flag: --no-such-flag"},
		{args: []string{"frobnicate"}, wantErr: `unknown command "frobnicate"`},
		{args: []string{"--debug", "make", "test"}, wantErr: `unknown command "make" (to run it in a VM: loftd -- make test)`},
		{args: []string{"--vmm", "xen", "--", "true"}, wantErr: `--vmm "xen": want one of auto, krun, qemu`},
		{args: []string{"--rootfs-backend", "zfs", "--", "true"}, wantErr: `--rootfs-backend "zfs"`},
		{args: []string{"-p", "80", "--", "true"}, wantErr: `--publish "80"`},
		{args: []string{"-v", "/a:b", "--", "true"}, wantErr: `--volume "/a:b"`},
		{args: []string{"-e", "*", "--", "true"}, wantErr: `--env "*"`},
		{args: []string{"--mem", "-1", "--", "true"}, wantErr: "--mem -1"},
		{args: []string{"--uid", "-5", "--", "true"}, wantErr: "--uid -5: want an id from 0 to 4294967294"},
		{args: []string{"--gid", "4294967296", "--", "true"}, wantErr: "--gid 4294967296: want an id from 0 to 4294967294"},
		{args: []string{"--network", "none", "-p", "8080:80", "--", "true"}, wantErr: "--publish 8080:80/tcp with --network none"},
		{args: []string{"-p", "8080:80"}, config: "[network]\nmode = \"none\"\n", wantErr: "with --network none (or [network] mode = \"none\")"},
		{args: []string{"--network", "slirp", "--", "true"}, wantErr: `--network "slirp": want one of passt, tsi, none`},
		{args: []string{"--tsi", "--network", "none", "--", "true"}, wantErr: "--tsi and --network none exclude each other"},
		{args: []string{"--tsi", "-p", "5353:53/udp", "--", "true"}, wantErr: "TCP only"},
		{args: []string{"--tsi", "-p", "8000-8001:80-81", "--", "true"}, wantErr: "single ports, not ranges"},
		{args: []string{"--tsi", "-p", "127.0.0.1:8080:80", "--", "true"}, wantErr: "cannot bind an address"},
		{args: []string{"-v", "/no/such/dir:/data", "--", "true"}, wantErr: "source: stat /no/such/dir"},
		{args: []string{"-v", "/tmp:/proc/x", "--", "true"}, wantErr: "under /proc"},
		{args: []string{"-v", "/tmp:/d", "-v", "/var:/d", "--", "true"}, wantErr: "--volume /tmp:/d and /var:/d: one guest target for two volumes"},
		{args: []string{"-v", "/var:/d"}, config: "volumes = [\"/tmp:/d\"]\n", wantErr: "one guest target"},
		{args: []string{"-v", "/tmp:/workspace/x", "--", "true"}, wantErr: "is the workspace (/workspace) or inside it"},
		{args: []string{"--", "true"}, config: "volumes = [\"/tmp:/\"]\n", wantErr: "hide the guest's root"},
		{args: []string{"--", "true"}, config: "[agentbox]\nmounts = [\"/etc\"]\n", wantErr: `agentbox.mounts "/etc"`},
		{args: []string{"resize", "--target", "home", "--size", "10"}, wantErr: `--target "home": want nix or containers`},
		{args: []string{"resize", "--target", "nix", "--size", "12GB"}, wantErr: `--size`},
		{args: []string{"resize", "--bogus"}, wantErr: "unknown flag: --bogus"},
		{args: []string{"internal"}, wantErr: "internal: want a subcommand"},
		{args: []string{"--", "true"}, config: "[vm]\nvmm = \"xen\"\n", wantErr: `vm.vmm "xen"`},
		// Defect 7: the LOFTD_* names are the host↔guest contract.
		{args: []string{"-e", "LOFTD_MODE=shell", "--", "true"}, wantErr: "--env LOFTD_MODE: LOFTD_* names are loftd's own"},
		{args: []string{"-e", "LOFTD_ROOT", "--", "true"}, wantErr: "--env LOFTD_ROOT"},
		{args: []string{"-e", "LOFTD_*", "--", "true"}, wantErr: "--env LOFTD_*"},
		{args: []string{"--", "true"}, config: "[env]\npass = [\"LOFTD_USER=x\"]\n", wantErr: "LOFTD_USER"},
		{args: []string{"--", "true"}, config: "[disks]\nnix_size = \"64X\"\n", wantErr: "disks.nix_size"},
		// Defect 13: 0 is not "default", the host's size is the limit.
		{args: []string{"--mem", "0", "--", "true"}, wantErr: "--mem 0: omit the flag for the default"},
		{args: []string{"--cpus", "0", "--", "true"}, wantErr: "--cpus 0: omit the flag for the default"},
		{args: []string{"--cpus", "999", "--", "true"}, wantErr: "--cpus 999: more than the"},
		{args: []string{"--mem", "100000", "--", "true"}, wantErr: "--mem 100000: more than the host's"},
		{args: []string{"--", "true"}, config: "[vm]\nmem = 99999999999999999\n", wantErr: "loftd.toml: [vm] mem 99999999999999999: more than the host's"},
		// Issue 17, item 8: a bad value from the config names the file and
		// its key, not a flag the user never typed.
		{args: []string{"--", "true"}, config: "volumes = [\"/a:b\"]\n", wantErr: `loftd.toml: volumes: "/a:b": `},
		{args: []string{"--", "true"}, config: "[network]\npublish = [\"80\"]\n", wantErr: `loftd.toml: [network] publish: "80": `},
		{args: []string{"--", "true"}, config: "[env]\npass = [\"*\"]\n", wantErr: `loftd.toml: [env] pass: "*": `},
		{args: []string{"--", "true"}, config: "[env]\npass = [\"LOFTD_USER=x\"]\n", wantErr: "loftd.toml: [env] pass: LOFTD_USER: LOFTD_* names"},
		{args: []string{"--", "true"}, config: "volumes = [\"/tmp:/\"]\n", wantErr: `loftd.toml: volumes: "/tmp:/"`},
		{args: []string{"--", "true"}, config: "[state]\nlocation = \"relstate\"\n", wantErr: `state.location "relstate"`},
	}
	for _, tt := range tests {
		status, _, stderr := runCLI(t, tt.config, tt.args...)
		if status == 0 || !strings.Contains(stderr, tt.wantErr) {
			t.Errorf("loftd %q: status %d, stderr %q; want non-zero and %q", tt.args, status, stderr, tt.wantErr)
		}
		if status == 2 && !strings.Contains(stderr, "Run 'loftd --help' for usage.") {
			t.Errorf("loftd %q: usage error without the usage hint: %q", tt.args, stderr)
		}
	}
}

func TestCLIUsageExitStatus(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--no-such-flag"}, {"frobnicate"}, {"doctor", "--nope"}, {"--vmm", "xen", "--", "true"},
		// Issue 17 item 8: two volumes on one target; a volume over the workspace.
		{"-v", dir + ":/data", "-v", "/tmp:/data/", "--", "true"},
		{"-v", dir + ":/workspace", "--", "true"},
	} {
		if status, _, _ := runCLI(t, "", args...); status != 2 {
			t.Errorf("loftd %q: status %d, want 2", args, status)
		}
	}
}

func TestCLIVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		status, stdout, _ := runCLI(t, "", args...)
		if status != 0 || stdout != "loftd "+Version+"\n" {
			t.Errorf("loftd %q = %d, %q; want 0 and \"loftd %s\"", args, status, stdout, Version)
		}
	}
}

func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"resize", "--help"}, {"reset-nix", "--help"}, {"doctor", "--help"}, {"gc", "--help"}, {"ps", "--help"}, {"images", "--help"}, {"version", "--help"}} {
		status, stdout, _ := runCLI(t, "", args...)
		if status != 0 || !strings.Contains(stdout, "Usage") {
			t.Errorf("loftd %q: status %d, stdout %q; want 0 and a usage text", args, status, stdout)
		}
	}
	// pflag prints the usage itself on --help; a second print doubled it.
	for _, args := range [][]string{{"--help"}, {"resize", "--help"}} {
		if _, stdout, _ := runCLI(t, "", args...); strings.Count(stdout, "Usage") != 1 {
			t.Errorf("loftd %q prints the usage %d times, want once:\n%s", args, strings.Count(stdout, "Usage"), stdout)
		}
	}
	_, stdout, _ := runCLI(t, "", "--help")
	for _, want := range []string{"--rootfs", "never written", "resize", "reset-nix", "--publish"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("loftd --help does not mention %q", want)
		}
	}
	if strings.Contains(stdout, "internal") {
		t.Errorf("loftd --help lists the hidden internal command")
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
			return o.Mem == 4096 && o.CPUs == 2 && o.VMM == launch.VMMQEMU && o.Image == "cfg-image" && o.Network == launch.NetworkPasst
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
		fs := (&env{}).newFlagSet("t", "")
		// A fixed host, so the config value 2 is valid on a one-CPU machine too.
		r := rawRun{host: func() (uint64, int) { return 64 << 30, 8 }}
		r.register(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		o, err := r.options(fs, cfg, nil)
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
		{[]string{"--mem", "17"}, Config{}, 16*gib + gib/2, 8, "--mem 17: more than the host's 16 GiB of RAM"},
		{[]string{"--cpus", "9"}, Config{}, 16 * gib, 8, "--cpus 9: more than the host's 8 CPUs"},
		{[]string{"--cpus", "256"}, Config{}, 16 * gib, 512, "--cpus 256: more than the 255 vCPUs"},
		{nil, Config{VM: VMConfig{Mem: 1 << 62}, path: "/c/loftd.toml"}, 16 * gib, 8, "/c/loftd.toml: [vm] mem 4611686018427387904: more than the host's 16 GiB"},
		{nil, Config{VM: VMConfig{CPUs: 9}, path: "/c/loftd.toml"}, 16 * gib, 8, "/c/loftd.toml: [vm] cpus 9"},
	}
	for _, tt := range tests {
		fs := (&env{}).newFlagSet("t", "")
		r := rawRun{host: func() (uint64, int) { return tt.mem, tt.cpus }}
		r.register(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		_, err := r.options(fs, &tt.cfg, nil)
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
		fs := (&env{}).newFlagSet("t", "")
		r := rawRun{host: func() (uint64, int) { return 64 << 30, 8 }}
		r.register(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		o, err := r.options(fs, &Config{Agentbox: AgentboxConfig{LiveMounts: tt.config}}, nil)
		if err != nil || o.LiveMounts != tt.want {
			t.Errorf("live_mounts = %v, args %q: LiveMounts %v, %v; want %v", tt.config, tt.args, o != nil && o.LiveMounts, err, tt.want)
		}
	}
}

package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/host/session"
)

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
	e := &env{IO: session.IO{Prog: "loftd", Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string {
			if k == "HOME" {
				return home
			}
			return ""
		}}}
	e.Log = session.NewLogger(&errb, false)
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
		{args: []string{"--network", "slirp", "--", "true"}, wantErr: `--network "slirp": want one of egress, passt, tsi, none`},
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
		{args: []string{"--mem", "100000", "--", "true"}, wantErr: "--mem 100000: more than the "},
		{args: []string{"--", "true"}, config: "[vm]\nmem = 99999999999999999\n", wantErr: "loftd.toml: [vm] mem 99999999999999999: more than the "},
		// Issue 17, item 8: a bad value from the config names the file and
		// its key, not a flag the user never typed.
		{args: []string{"--", "true"}, config: "volumes = [\"/a:b\"]\n", wantErr: `loftd.toml: volumes: "/a:b": `},
		{args: []string{"--", "true"}, config: "[network]\npublish = [\"80\"]\n", wantErr: `loftd.toml: [network] publish: "80": `},
		{args: []string{"--", "true"}, config: "[env]\npass = [\"*\"]\n", wantErr: `loftd.toml: [env] pass: "*": `},
		// Issue 24: the guest's hostname, from the flag or the config.
		{args: []string{"--hostname", "bad host", "--", "true"}, wantErr: `--hostname "bad host" is not a hostname`},
		{args: []string{"--hostname", "-x", "--", "true"}, wantErr: `--hostname "-x" is not a hostname`},
		{args: []string{"--", "true"}, config: "[workspace]\nhostname = \"a_b\"\n", wantErr: `loftd.toml: [workspace] hostname: "a_b" is not a hostname`},
		{args: []string{"--", "true"}, config: "[workspace]\nbootstrap = 3\n", wantErr: `loftd.toml`},
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

// TestPublishTwiceExitsTwo: the refusal reaches the command line as a
// usage error, exit status 2, before anything is prepared.
func TestPublishTwiceExitsTwo(t *testing.T) {
	args := []string{"-p", "8080:80", "-p", "127.0.0.1:8080:81", "--", "true"}
	status, _, stderr := runCLI(t, "", args...)
	if status != 2 || !strings.Contains(stderr, "published twice") {
		t.Errorf("loftd %q: status %d, stderr %q; want 2 and \"published twice\"", args, status, stderr)
	}
}

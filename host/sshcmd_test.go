package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/host/session"
)

// ssh-config prints a Host block that pins the workspace's host key and
// names its key; --install writes it under ~/.ssh/loftd.d and adds the
// Include line to ~/.ssh/config once, at its top; the start flags after --
// are kept for ssh-proxy, not written into the block.
func TestSSHConfig(t *testing.T) {
	home, ws := t.TempDir(), t.TempDir()
	run := func(args ...string) (int, string, string) {
		var out, errb strings.Builder
		e := &env{IO: session.IO{Prog: "loftd", Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
			Getenv: func(k string) string {
				if k == "HOME" {
					return home
				}
				return ""
			}}}
		e.Log = session.NewLogger(&errb, false)
		return e.main(args), out.String(), errb.String()
	}
	status, block, errs := run("ssh-config", ws, "--", "--mem", "2")
	if status != 0 {
		t.Fatalf("ssh-config: %d\n%s", status, errs)
	}
	for _, want := range []string{"Host loftd-", "User dev", " ssh-proxy loftd-", "IdentityFile ", "StrictHostKeyChecking yes", "HostKeyAlias loftd-", "UserKnownHostsFile "} {
		if !strings.Contains(block, want) {
			t.Errorf("ssh-config block lacks %q:\n%s", want, block)
		}
	}
	if strings.Contains(block, "--mem") {
		t.Errorf("the start flags leaked into the block:\n%s", block)
	}
	alias := strings.TrimPrefix(strings.SplitN(block, "\n", 2)[0], "Host ")
	var known string
	for _, l := range strings.Split(block, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "UserKnownHostsFile" {
			known = f[1]
		}
	}
	data, err := os.ReadFile(known)
	if err != nil || !strings.HasPrefix(string(data), alias+" ssh-ed25519 ") {
		t.Errorf("known_hosts %s = %q, %v; want the host key pinned under %s", known, data, err, alias)
	}

	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte("Host other\n  User x\n"), 0o600)
	for range 2 {
		if status, _, errs := run("ssh-config", "--install", ws); status != 0 {
			t.Fatalf("ssh-config --install: %d\n%s", status, errs)
		}
	}
	cfg, _ := os.ReadFile(filepath.Join(home, ".ssh", "config"))
	if want := includeLine + "\n\nHost other\n  User x\n"; string(cfg) != want {
		t.Errorf("~/.ssh/config after two installs =\n%s\nwant\n%s", cfg, want)
	}
	inst, err := os.ReadFile(filepath.Join(home, ".ssh", "loftd.d", alias+".conf"))
	if err != nil || string(inst) != block {
		t.Errorf("installed block = %q, %v; want the printed one", inst, err)
	}
}

package host

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/internal/testenv"
)

// TestMain lets the test binary be loftd: linked as "loftd" it runs the
// CLI, so the shell scripts under test call this build's __complete.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "loftd" {
		os.Exit(Main("loftd", os.Args[1:]))
	}
	os.Exit(m.Run())
}

const fakeImages = "REFERENCE                        DIGEST               SIZE    LAST USED\n" +
	"localhost/loftd:latest           sha256:0123456789ab  457 MB  2025-01-01 10:00:00\n" +
	"docker.io/library/alpine:3,localhost/alp:x  sha256:ba9876543210  8 MB  2025-01-01 10:00:00\n"

func swapImages(t *testing.T) {
	old := listImages
	listImages = func() ([]byte, error) { return []byte(fakeImages), nil }
	t.Cleanup(func() { listImages = old })
}

// TestCompletionCandidates: commands, flags of the session and of each
// command (from their own flag sets), subcommands, and --image values.
func TestCompletionCandidates(t *testing.T) {
	swapImages(t)
	tests := []struct {
		words   []string
		want    []string // all of these
		notWant []string
	}{
		{[]string{""}, []string{"resize", "doctor", "images", "completion"}, []string{"internal", "__complete", "--image"}},
		{[]string{"res"}, []string{"resize", "reset-nix"}, []string{"doctor"}},
		{[]string{"--ima"}, []string{"--image"}, []string{"--mem"}},
		{[]string{"-"}, []string{"--image", "--publish", "-p", "--guest-init", "--help"}, nil},
		{[]string{"--mem", "2", "--c"}, []string{"--cpus"}, []string{"--mem"}},
		{[]string{"resize", "--"}, []string{"--target", "--size", "--workspace"}, []string{"--image"}},
		{[]string{"image", ""}, []string{"build", "import"}, nil},
		{[]string{"image", "build", "--t"}, []string{"--tag"}, []string{"--image"}},
		{[]string{"--image", ""}, []string{"localhost/loftd:latest", "docker.io/library/alpine:3", "localhost/alp:x"}, []string{"REFERENCE"}},
		{[]string{"--image", "local"}, []string{"localhost/loftd:latest", "localhost/alp:x"}, []string{"docker.io/library/alpine:3"}},
		{[]string{"--image=d"}, []string{"--image=docker.io/library/alpine:3"}, []string{"--image=localhost/loftd:latest"}},
		{[]string{"--root", "--ima"}, []string{"--image"}, nil},
		{[]string{"--", "--ima"}, nil, []string{"--image"}},
		{[]string{"--workspace", ""}, nil, []string{"localhost/loftd:latest", "resize"}},
		{[]string{"internal", "--"}, nil, []string{"--error-fd"}},
	}
	for _, tt := range tests {
		e := &env{IO: session.IO{Prog: "loftd", Getenv: func(string) string { return "" }}}
		got := complete(e, tt.words)
		for _, w := range tt.want {
			if !slices.Contains(got, w) {
				t.Errorf("complete(%q) = %q, want %q among them", tt.words, got, w)
			}
		}
		for _, w := range tt.notWant {
			if slices.Contains(got, w) {
				t.Errorf("complete(%q) = %q, want no %q", tt.words, got, w)
			}
		}
	}
}

// TestCompletionSubcommands: each listed subcommand is real (it declares
// flags), and an unknown one is refused, so the list cannot name a ghost.
func TestCompletionSubcommands(t *testing.T) {
	e := &env{IO: session.IO{Prog: "loftd", Getenv: func(string) string { return "" }}}
	for name, subs := range subcommands {
		cmd, ok := e.lookup(name)
		if !ok {
			t.Fatalf("subcommands names %q, which is no command", name)
		}
		for _, sub := range subs {
			if fs := flagsOf(e, cmd.run, []string{sub}); fs == nil {
				t.Errorf("%s %s declares no flags: not a subcommand", name, sub)
			}
		}
		if fs := flagsOf(e, cmd.run, []string{"no-such-sub"}); fs != nil {
			t.Errorf("%s no-such-sub declared flags; the check above proves nothing", name)
		}
	}
}

// TestCompletionScripts: each script names the program and its hook;
// zsh and fish parse it when installed.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		for _, prog := range []string{"loftd", "agentbox"} {
			var out bytes.Buffer
			e := &env{IO: session.IO{Prog: prog, Stdout: &out, Getenv: func(string) string { return "" }}}
			if err := runCompletion(e, []string{shell}); err != nil {
				t.Fatalf("%s completion %s: %v", prog, shell, err)
			}
			if !strings.Contains(out.String(), prog+" __complete") && !strings.Contains(out.String(), "__complete") {
				t.Errorf("%s completion %s does not call __complete:\n%s", prog, shell, out.String())
			}
			if strings.Contains(out.String(), "@PROG@") || strings.Contains(out.String(), "@FUNC@") {
				t.Errorf("%s completion %s left a placeholder:\n%s", prog, shell, out.String())
			}
			check := map[string][]string{"bash": {"bash", "-n"}, "zsh": {"zsh", "-n"}, "fish": {"fish", "-n"}}[shell]
			bin := testenv.RequireCommand(t, check[0], check[0])
			f := filepath.Join(t.TempDir(), "script")
			if err := os.WriteFile(f, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(bin, check[1], f).CombinedOutput(); err != nil {
				t.Errorf("%s %s on %s completion %s: %v\n%s", check[0], check[1], prog, shell, err, b)
			}
		}
	}
	e := &env{IO: session.IO{Prog: "loftd", Stdout: &bytes.Buffer{}, Getenv: func(string) string { return "" }}}
	if err := runCompletion(e, []string{"tcsh"}); err == nil {
		t.Errorf("loftd completion tcsh = nil error, want a usage error")
	}
}

// TestCompletionBash loads the bash script as a user's shell would and
// completes with it: this test binary, linked as loftd, answers
// __complete.
func TestCompletionBash(t *testing.T) {
	bash := testenv.RequireCommand(t, "bash", "bash")
	bin := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, "loftd")); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ line, want string }{
		{"loftd --ima", "--image"},
		{"loftd res", "resize"},
		{"loftd resize --tar", "--target"},
		{"loftd image b", "build"},
	}
	for _, tt := range tests {
		script := `source <(loftd completion bash) && complete -p loftd >/dev/null && ` +
			`COMP_LINE="$LINE" COMP_POINT=${#LINE} && _loftd_complete && printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "LINE="+tt.line)
		out, err := cmd.CombinedOutput()
		if err != nil || !slices.Contains(strings.Fields(string(out)), tt.want) {
			t.Errorf("bash completion of %q = %q, %v; want %q among the candidates", tt.line, out, err, tt.want)
		}
	}
}

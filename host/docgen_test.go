package host

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsUpToDate: docs/commands is what the commands' flag sets generate
// today, file for file.
func TestDocsUpToDate(t *testing.T) {
	pages, err := GenerateDocs()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "docs", "commands")
	const fix = "regenerate with: go run -tags containers_image_openpgp ./cmd/loftd internal gen-docs docs/commands"
	for name, want := range pages {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("docs/commands/%s: %v; %s", name, err, fix)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("docs/commands/%s is stale; %s", name, fix)
		}
	}
	have, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	for _, p := range have {
		if _, ok := pages[filepath.Base(p)]; !ok {
			t.Errorf("docs/commands/%s documents no command; %s", filepath.Base(p), fix)
		}
	}
}

// TestDocsCoverCommands: every visible command and every flag of a
// command has its page and row, and a dispatcher's documented subcommands
// are the ones its help names.
func TestDocsCoverCommands(t *testing.T) {
	pages, err := GenerateDocs()
	if err != nil {
		t.Fatal(err)
	}
	gc := string(pages["gc.md"])
	for _, flag := range []string{"`--images`", "`--older-than`", "`--all`"} {
		if !strings.Contains(gc, flag) {
			t.Errorf("gc.md has no row for %s:\n%s", flag, gc)
		}
	}
	if s := string(pages["loftd.md"]); !strings.Contains(s, "`-p`, `--publish`") || !strings.Contains(s, "`125`") {
		t.Errorf("loftd.md lacks the session flags or the setup exit status:\n%s", s)
	}
	c := newCLI(t)
	for cmd, subs := range docSubcommands {
		_, stdout, _ := c.run(cmd, "--help")
		for _, sc := range subs {
			if !strings.Contains(stdout, sc[0]) {
				t.Errorf("loftd %s --help does not name %q, which the docs document:\n%s", cmd, sc[0], stdout)
			}
		}
	}
}

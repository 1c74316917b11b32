package host

import (
	"strings"
	"testing"

	"github.com/loftd/loftd/host/session"
)

// TestImageCommandUsage: mistakes on `loftd image` are usage errors (exit
// 2) that name the mistake, found before any store is opened.
func TestImageCommandUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"image"}, "want a subcommand"},
		{[]string{"image", "pull"}, `unknown subcommand "pull"`},
		{[]string{"image", "build", "--build-arg", "NOVALUE"}, `--build-arg "NOVALUE": want KEY=VAL`},
		{[]string{"image", "build", "a", "b"}, "at most one CONTEXT"},
		{[]string{"image", "import"}, "scripts/make-base"},
		{[]string{"image", "build", "--tag", "Bad Tag"}, `--tag: image tag "Bad Tag": invalid reference format`},
		{[]string{"image", "build", "--tag", ""}, "--tag: image tag: none given"},
		{[]string{"image", "import", "--tag", "UPPER", "base.tar"}, `--tag: image tag "UPPER": invalid reference format`},
		// An absolute --file is used as it is, never joined onto CONTEXT.
		{[]string{"image", "build", "--file", "/nonexistent/Containerfile", "/tmp"}, "--file /nonexistent/Containerfile: no such file or directory"},
		{[]string{"image", "build", "--file", "/tmp"}, "--file /tmp: not a regular file"},
		{[]string{"image", "build", "/nonexistent-context"}, "CONTEXT /nonexistent-context: no such file or directory"},
	} {
		status, _, stderr := newCLI(t).run(tt.args...)
		if status != session.ExitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("loftd %q = %d, %q; want %d and %q", tt.args, status, stderr, session.ExitUsage, tt.want)
		}
	}
}

package deptest

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// TestNoTrackedBinaries keeps build outputs out of git: a stale 4 MB guest
// init once sat at the repository root for a whole turn. No tracked file
// may be an ELF object (executable, shared library or relocatable).
func TestNoTrackedBinaries(t *testing.T) {
	gitBin := testenv.RequireCommand(t, "git", "git")
	cmd := exec.Command(gitBin, "ls-files", "-z")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	if len(files) < 10 {
		t.Fatalf("git ls-files listed %d files; want the whole tree", len(files))
	}
	for _, f := range files {
		if isELF(t, filepath.Join("../..", f)) {
			t.Errorf("%s is tracked and is an ELF binary: build outputs do not belong in git (git rm --cached %s; add it to .gitignore)", f, f)
		}
	}
}

// isELF reports whether path starts with the ELF magic. A tracked file
// that is missing from the work tree (deleted, not yet committed) is not
// one.
func isELF(t *testing.T, path string) bool {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return false
		}
		t.Fatal(err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil {
		return false
	}
	return bytes.Equal(magic, []byte("\x7fELF"))
}

package state

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestWorkspaceName(t *testing.T) {
	tests := []struct{ path, wantPrefix string }{
		{"/home/u/src/loftd", "loftd-"},
		{"/home/u/My_Project.v2", "my-project-v2-"},
		{"/home/u/Ünïcode", "ncode-"},
		{"/", "workspace-"},
		{"/home/u/___", "workspace-"},
	}
	re := regexp.MustCompile(`^[a-z0-9-]+-[0-9a-f]{8}$`)
	for _, tt := range tests {
		got := WorkspaceName(tt.path)
		if !re.MatchString(got) || got[:len(tt.wantPrefix)] != tt.wantPrefix {
			t.Errorf("WorkspaceName(%q) = %q, want %s<8 hex>", tt.path, got, tt.wantPrefix)
		}
	}
	// sha256("/home/u/src/loftd")[:4], computed independently with sha256sum.
	if got, want := WorkspaceName("/home/u/src/loftd"), "loftd-7e85d7c2"; got != want {
		t.Errorf("WorkspaceName = %q, want %q", got, want)
	}
	// A 250-character directory name must still give a usable file name
	// (NAME_MAX is 255) with the hash kept.
	long := "/home/u/" + strings.Repeat("a", 250)
	if got := WorkspaceName(long); len(got) > 64 || !re.MatchString(got) || got[len(got)-8:] != WorkspaceName(long)[len(got)-8:] {
		t.Errorf("WorkspaceName(<250 chars>) = %q (%d bytes), want at most 64 bytes ending in the hash", got, len(got))
	}
	if err := os.Mkdir(filepath.Join(t.TempDir(), WorkspaceName(long)), 0o700); err != nil {
		t.Errorf("workspace directory of a 250-character project name: %v", err)
	}
	if WorkspaceName(long) == WorkspaceName(long+"b") {
		t.Errorf("two long names with one shortened slug share a workspace directory")
	}
	if WorkspaceName("/a/x") == WorkspaceName("/b/x") {
		t.Errorf("two projects with one base name share a workspace directory")
	}
}

func TestFindWorkspace(t *testing.T) {
	top := t.TempDir()
	top, _ = filepath.EvalSymlinks(top)
	sub := filepath.Join(top, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	plain := t.TempDir()
	plain, _ = filepath.EvalSymlinks(plain)
	if got, err := FindWorkspace(sub); err != nil || got != sub {
		t.Errorf("FindWorkspace(no git) = %q, %v, want %q", got, err, sub)
	}
	if err := os.Mkdir(filepath.Join(top, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := FindWorkspace(sub); err != nil || got != top {
		t.Errorf("FindWorkspace(in git) = %q, %v, want the git top level %q", got, err, top)
	}
	if got, err := FindWorkspace(plain); err != nil || got != plain {
		t.Errorf("FindWorkspace(%q) = %q, %v", plain, got, err)
	}
}

func TestStateLayout(t *testing.T) {
	st := State{Dir: "/s"}
	ws := st.Workspace("/p/proj")
	name := WorkspaceName("/p/proj")
	for got, want := range map[string]string{
		st.Images(): "/s/images", st.Tasks(): "/s/tasks",
		ws.Dir: "/s/workspaces/" + name, ws.NixDisk(): "/s/workspaces/" + name + "/nix.raw",
		ws.ContainersDisk(): "/s/workspaces/" + name + "/containers.raw", ws.Lock(): "/s/workspaces/" + name + "/lock",
	} {
		if got != want {
			t.Errorf("layout path = %q, want %q", got, want)
		}
	}
}

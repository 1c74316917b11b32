package session

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResolveVolumes: the user's links (outside every share) are followed
// before boot, the guest's (inside the workspace or a directory volume)
// refuse the volume (issue 17, item 5).
func TestResolveVolumes(t *testing.T) {
	top := t.TempDir()
	p := func(rel string) string { return filepath.Join(top, rel) }
	for _, d := range []string{"ws/dir", "vol", "dotfiles/claude", "home", "outside"} {
		if err := os.MkdirAll(p(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"ws/real.txt", "outside/secret", "dotfiles/gitconfig"} {
		if err := os.WriteFile(p(f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"ws/cfg.txt":      p("outside/secret"),  // planted by the guest
		"ws/sub":          "../outside",         // a planted directory link
		"vol/l":           p("outside/secret"),  // planted in a directory volume
		"home/.claude":    p("dotfiles/claude"), // the user's own
		"home/.gitconfig": "../dotfiles/gitconfig",
		"home/cfg":        p("ws/real.txt"), // the user's link into the workspace
		"home/bad":        p("ws/cfg.txt"),  // … onto a guest link
		"wslink":          "ws",             // the workspace reached through a link
	}
	for l, target := range links {
		if err := os.Symlink(target, p(l)); err != nil {
			t.Fatal(err)
		}
	}
	vol := Volume{Source: p("vol"), Target: "/vol"}
	tests := []struct {
		src     string
		want    string // the resolved source; "" = refused
		file    bool
		wantErr string
	}{
		{src: p("ws/real.txt"), want: p("ws/real.txt"), file: true},
		{src: p("ws/dir"), want: p("ws/dir")},
		{src: p("ws/cfg.txt"), wantErr: "cfg.txt is a symbolic link inside " + p("ws")},
		{src: p("ws/sub/secret"), wantErr: "sub is a symbolic link inside"},
		{src: p("vol/l"), wantErr: "l is a symbolic link inside " + p("vol")},
		{src: p("home/.claude"), want: p("dotfiles/claude")},
		{src: p("home/.gitconfig"), want: p("dotfiles/gitconfig"), file: true},
		{src: p("home/cfg"), want: p("ws/real.txt"), file: true},
		{src: p("home/bad"), wantErr: "cfg.txt is a symbolic link inside"},
		{src: p("wslink/real.txt"), want: p("ws/real.txt"), file: true},
		{src: p("wslink/cfg.txt"), wantErr: "symbolic link inside"},
		{src: p("home/missing"), wantErr: "no such file"},
	}
	for _, tt := range tests {
		got, err := resolveVolumes([]Volume{vol, {Source: tt.src, Target: "/t", ReadOnly: true}}, p("ws"))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("resolveVolumes(%s) = %+v, %v; want an error containing %q", tt.src, got, err, tt.wantErr)
			}
			continue
		}
		want := Volume{Source: tt.want, Target: "/t", ReadOnly: true, File: tt.file}
		if err != nil || len(got) != 2 || got[1] != want {
			t.Errorf("resolveVolumes(%s) = %+v, %v; want [vol, %+v]", tt.src, got, err, want)
		}
	}
}

func TestReadableBy(t *testing.T) {
	tests := []struct {
		mode         fs.FileMode
		owner, group uint32
		uid, gid     int
		want         bool
	}{
		{0o600, 0, 0, 0, 0, true}, // root reads all
		{0o600, 1000, 1000, 1000, 1000, true},
		{0o640, 0, 42, 1000, 1000, false}, // /etc/shadow for a user
		{0o640, 0, 1000, 1000, 1000, true},
		{0o044, 1000, 0, 1000, 0, false}, // the owner's bits decide for the owner
		{0o644, 0, 0, 1000, 1000, true},
	}
	for _, tt := range tests {
		if got := readableBy(tt.mode, tt.owner, tt.group, tt.uid, tt.gid); got != tt.want {
			t.Errorf("readableBy(%v, %d:%d, for %d:%d) = %v, want %v", tt.mode, tt.owner, tt.group, tt.uid, tt.gid, got, tt.want)
		}
	}
}

// TestCopyVolumeFilesAsRoot: as root for a user, loftd copies only what
// that user may read, and never a file swapped for a link since the check.
func TestCopyVolumeFilesAsRoot(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	own, priv := filepath.Join(dir, "own"), filepath.Join(dir, "priv")
	if err := os.WriteFile(own, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(priv, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(own, filepath.Join(dir, "swapped")); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	other := uid + 1
	tests := []struct {
		src     string
		uid     int
		asRoot  bool
		wantErr string
	}{
		{src: own, uid: other, asRoot: true},
		{src: priv, uid: uid, asRoot: true},
		{src: priv, uid: other, asRoot: true, wantErr: "not readable by the guest user's host identity"},
		{src: priv, uid: other, asRoot: false},
		{src: filepath.Join(dir, "swapped"), uid: uid, wantErr: "too many levels of symbolic links"},
	}
	for _, tt := range tests {
		v := Volume{Source: tt.src, Target: "/home/dev/f", File: true}
		err := copyVolumeFiles(root, []Volume{v}, identity{guestUID: tt.uid, guestGID: gid, hostUID: tt.uid, hostGID: gid}, tt.asRoot)
		if tt.wantErr == "" && err != nil && !os.IsPermission(err) {
			// Lchown to another uid needs root; the check passed if that is all.
			t.Errorf("copy %s for uid %d (as root %v): %v", tt.src, tt.uid, tt.asRoot, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("copy %s for uid %d (as root %v): %v, want an error containing %q", tt.src, tt.uid, tt.asRoot, err, tt.wantErr)
		}
	}
}

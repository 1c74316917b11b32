package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// treeDigest describes every entry under dir (name, type, mode, owner,
// content or link target), so two digests are equal exactly when the tree
// is byte-identical.
func treeDigest(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			tgt, _ := os.Readlink(p)
			desc += " -> " + tgt
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:8])
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffDigests(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	sort.Strings(d)
	return d
}

// sub runs a loftd subcommand (reviews, diff, apply, discard, gc) in the
// world's state, from the workspace.
func (w *world) sub(args ...string) (int, string, string) {
	w.t.Helper()
	c := exec.Command(bins.loftd, args...)
	c.Dir = w.workspace
	c.Env = append(os.Environ(), "XDG_STATE_HOME="+w.state, "XDG_CONFIG_HOME="+filepath.Join(w.state, "config"))
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if err != nil && c.ProcessState == nil {
		w.t.Fatalf("loftd %q: %v", args, err)
	}
	return c.ProcessState.ExitCode(), out.String(), errb.String()
}

func writeFiles(t testing.TB, dir string, files map[string]string, owner int) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", owner, owner), dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
}

// reviewScript edits, creates, deletes, renames, chmods, symlinks and
// plants a git hook in /workspace, then shows the guest its own edit.
const reviewScript = `set -e; cd /workspace
echo two > edit.txt
echo new > new.txt
rm gone.txt
mv old-name.txt renamed.txt
chmod +x script.sh
ln -s /etc/passwd link
rm -r sub; mkdir sub; echo z > sub/z
printf '#!/bin/sh\necho pwned\n' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit
cat edit.txt`

// TestReviewRun: a --review run's writes stay out of the workspace, which
// stays byte-identical; diff lists each change with the hook first; a
// subset is applied while the file the host edited meanwhile is a
// conflict; discard drops the rest and gc the record.
func TestReviewRun(t *testing.T) {
	w := newWorld(t)
	writeFiles(t, w.workspace, map[string]string{"edit.txt": "one\n", "gone.txt": "bye\n", "old-name.txt": "rename me\n",
		"script.sh": "echo hi\n", "keep.txt": "keep\n", ".git/hooks/README": "hooks\n", ".git/config": "[core]\n", "sub/a": "a\n"}, guestUID)
	before := treeDigest(t, w.workspace)
	status, stdout, stderr := w.run("", "--review", "--", "sh", "-c", reviewScript)
	if status != 0 || stdout != "two\n" {
		t.Fatalf("loftd --review: status %d, stdout %q, want 0 and the guest's own edit \"two\\n\"; stderr:\n%s", status, stdout, stderr)
	}
	if d := diffDigests(before, treeDigest(t, w.workspace)); len(d) > 0 {
		t.Fatalf("the review run changed the host workspace:\n%s", strings.Join(d, "\n"))
	}
	_, out, errs := w.sub("reviews", "--format", "json")
	var runs []struct{ ID, State, Workspace string }
	if err := json.Unmarshal([]byte(out), &runs); err != nil || len(runs) != 1 || runs[0].State != "pending" {
		t.Fatalf("reviews --format json = %s (%v; stderr %s), want one pending run", out, err, errs)
	}
	id := runs[0].ID
	status, out, errs = w.sub("diff")
	if status != 0 {
		t.Fatalf("diff: status %d, stderr %s", status, errs)
	}
	if !strings.HasPrefix(out, "! added       .git/hooks/pre-commit") {
		t.Errorf("diff does not flag the hook first:\n%s", out)
	}
	for _, want := range []string{"  modified    edit.txt\n", "  added       new.txt mode -rw-r--r--\n", "  deleted     gone.txt\n",
		"  renamed     renamed.txt (from old-name.txt)\n", "! mode        script.sh mode -rw-r--r-- -> -rwxr-xr-x\n",
		"  added       link -> /etc/passwd (symlink)\n", "  deleted     sub/a\n", "  added       sub/z mode -rw-r--r--\n",
		"-one\n+two\n", "+++ b/new.txt\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	// The host edits edit.txt; applying it and new.txt applies new.txt only.
	if err := os.WriteFile(filepath.Join(w.workspace, "edit.txt"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	status, out, errs = w.sub("apply", id, "edit.txt", "new.txt", "--format", "json")
	var res struct {
		Applied, Conflicts []struct{ Path string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || status != 1 || len(res.Applied) != 1 || res.Applied[0].Path != "new.txt" ||
		len(res.Conflicts) != 1 || res.Conflicts[0].Path != "edit.txt" {
		t.Fatalf("apply edit.txt new.txt = %d %s (%v; stderr %s), want status 1, new.txt applied, edit.txt a conflict", status, out, err, errs)
	}
	after := treeDigest(t, w.workspace)
	if b, _ := os.ReadFile(filepath.Join(w.workspace, "new.txt")); string(b) != "new\n" {
		t.Errorf("new.txt after apply = %q, want \"new\\n\"", b)
	}
	if b, _ := os.ReadFile(filepath.Join(w.workspace, "edit.txt")); string(b) != "host\n" {
		t.Errorf("edit.txt after apply = %q, want the host's edit kept", b)
	}
	delete(after, "new.txt")
	delete(after, "edit.txt")
	delete(before, "edit.txt")
	if d := diffDigests(before, after); len(d) > 0 {
		t.Errorf("apply of a subset changed more:\n%s", strings.Join(d, "\n"))
	}
	if status, out, errs = w.sub("discard", id); status != 0 {
		t.Fatalf("discard: %d %s %s", status, out, errs)
	}
	if status, _, _ = w.sub("diff", id); status == 0 {
		t.Errorf("diff of a discarded run succeeded")
	}
	if status, out, errs = w.sub("gc"); status != 0 || !strings.Contains(out, "removed discarded review run "+id) {
		t.Errorf("gc = %d %q %s, want the discarded run removed", status, out, errs)
	}
	if _, err := os.Stat(filepath.Join(w.state, "loftd", "reviews", id)); !os.IsNotExist(err) {
		t.Errorf("the review directory survived gc: %v", err)
	}
}

// TestReviewApplyAll: a full apply lands every change, the hook included,
// and the run is then applied.
func TestReviewApplyAll(t *testing.T) {
	w := newWorld(t)
	writeFiles(t, w.workspace, map[string]string{"edit.txt": "one\n", "gone.txt": "bye\n", "old-name.txt": "rename me\n",
		"script.sh": "echo hi\n", ".git/hooks/README": "hooks\n", "sub/a": "a\n"}, guestUID)
	if status, _, stderr := w.run("", "--review", "--", "sh", "-c", reviewScript); status != 0 {
		t.Fatalf("loftd --review: %d\n%s", status, stderr)
	}
	if status, out, errs := w.sub("apply"); status != 0 {
		t.Fatalf("apply: %d %s %s", status, out, errs)
	}
	want := map[string]string{"edit.txt": "two\n", "new.txt": "new\n", "renamed.txt": "rename me\n", "sub/z": "z\n", ".git/hooks/pre-commit": "#!/bin/sh\necho pwned\n"}
	for p, data := range want {
		b, err := os.ReadFile(filepath.Join(w.workspace, p))
		if err != nil || string(b) != data {
			t.Errorf("%s after apply = %q, %v; want %q", p, b, err, data)
			continue
		}
		fi, _ := os.Lstat(filepath.Join(w.workspace, p))
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != guestUID {
			t.Errorf("%s after apply belongs to uid %d, want the workspace owner %d", p, st.Uid, guestUID)
		}
	}
	for _, p := range []string{"gone.txt", "old-name.txt", "sub/a"} {
		if _, err := os.Lstat(filepath.Join(w.workspace, p)); !os.IsNotExist(err) {
			t.Errorf("%s after apply: %v, want it gone", p, err)
		}
	}
	if tgt, err := os.Readlink(filepath.Join(w.workspace, "link")); err != nil || tgt != "/etc/passwd" {
		t.Errorf("link = %q %v", tgt, err)
	}
	if fi, err := os.Stat(filepath.Join(w.workspace, "script.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("script.sh mode after apply: %v %v, want 0755", fi.Mode(), err)
	}
	_, out, _ := w.sub("reviews")
	if !strings.Contains(out, "applied") {
		t.Errorf("reviews after a full apply:\n%s\nwant the run applied", out)
	}
}

// sub runs a loftd subcommand as the unprivileged user, from the workspace.
func (w *rootlessWorld) sub(args ...string) (int, string, string) {
	w.t.Helper()
	c := w.cmd()
	c.Args = append([]string{c.Args[0]}, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if err != nil && c.ProcessState == nil {
		w.t.Fatalf("loftd %q: %v", args, err)
	}
	return c.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestReviewRootless: a review run as an unprivileged user (the overlay
// mounted in the keep-id namespace with userxattr) keeps the workspace
// byte-identical, and its diff and apply work as that user; applied files
// are the user's.
func TestReviewRootless(t *testing.T) {
	w := newRootlessWorld(t)
	writeFiles(t, w.ws, map[string]string{"edit.txt": "one\n", "keep.txt": "keep\n", "gone.txt": "bye\n", "d/x": "x\n", "d/y": "y\n"}, w.uid)
	before := treeDigest(t, w.ws)
	// A deletion and a directory made again (opaque) in a userxattr overlay.
	c := w.cmd("--review", "--", "sh", "-c", "cd /workspace; echo two > edit.txt; echo new > new.txt; busybox rm gone.txt; busybox rm -r d; busybox mkdir d; echo z > d/z; cat edit.txt")
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil || string(out) != "two\n" {
		t.Fatalf("rootless loftd --review: %v, stdout %q; stderr:\n%s", err, out, stderr.String())
	}
	if d := diffDigests(before, treeDigest(t, w.ws)); len(d) > 0 {
		t.Fatalf("the rootless review run changed the workspace:\n%s", strings.Join(d, "\n"))
	}
	status, diff, errs := w.sub("diff")
	if status != 0 || !strings.Contains(diff, "  modified    edit.txt\n") || !strings.Contains(diff, "  added       new.txt") ||
		!strings.Contains(diff, "  deleted     gone.txt\n") || !strings.Contains(diff, "  deleted     d/x\n") || !strings.Contains(diff, "  added       d/z") {
		t.Fatalf("rootless diff = %d:\n%s\nstderr %s", status, diff, errs)
	}
	if status, out, errs := w.sub("apply"); status != 0 {
		t.Fatalf("rootless apply = %d %s %s", status, out, errs)
	}
	for _, p := range []string{"gone.txt", "d/x", "d/y"} {
		if _, err := os.Lstat(filepath.Join(w.ws, p)); !os.IsNotExist(err) {
			t.Errorf("%s after a rootless apply: %v, want it deleted", p, err)
		}
	}
	for p, want := range map[string]string{"edit.txt": "two\n", "new.txt": "new\n", "d/z": "z\n"} {
		fp := filepath.Join(w.ws, p)
		b, err := os.ReadFile(fp)
		if err != nil || string(b) != want {
			t.Errorf("%s after apply = %q %v, want %q", p, b, err, want)
			continue
		}
		fi, _ := os.Lstat(fp)
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != w.uid {
			t.Errorf("%s after a rootless apply belongs to uid %d, want the user's %d", p, st.Uid, w.uid)
		}
	}
	if status, out, errs := w.sub("gc", "--reviews", "--all"); status != 0 || !strings.Contains(out, "removed applied review run") {
		t.Errorf("rootless gc = %d %q %s, want the applied run removed", status, out, errs)
	}
}

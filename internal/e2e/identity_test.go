package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestIdentity: as root with --uid/--gid the workload runs as dev with
// those ids (all four of real, effective, saved and filesystem), with the
// login environment, and what it writes in /workspace is theirs on the
// host; --root keeps root. The busybox root has no /etc/passwd at all.
func TestIdentity(t *testing.T) {
	w := newWorld(t)
	if err := os.Chown(w.workspace, 1234, 1235); err != nil {
		t.Fatal(err)
	}
	script := `id -u; id -g; id -un; grep -E '^(Uid|Gid):' /proc/self/status
echo "$HOME $USER $LOGNAME $SHELL $XDG_RUNTIME_DIR $LANG"
stat -c '%u:%g %a' "$HOME" "$XDG_RUNTIME_DIR"
grep -c '^dev:' /etc/passwd; cat /proc/sys/kernel/dmesg_restrict
test -r /dev/net/tun -a -w /dev/net/tun && echo tun usable
echo data > /workspace/from-guest`
	status, stdout, stderr := w.run("", "--uid", "1234", "--gid", "1235", "--", "sh", "-c", script)
	want := "1234\n1235\ndev\nUid:\t1234\t1234\t1234\t1234\nGid:\t1235\t1235\t1235\t1235\n" +
		"/home/dev dev dev /bin/sh /run/user/1234 C.UTF-8\n" +
		"1234:1235 700\n1234:1235 700\n" +
		"1\n1\ntun usable\n"
	if status != 0 || stdout != want {
		t.Fatalf("loftd --uid 1234 --gid 1235 = %d, stdout\n%s\nwant\n%s\nstderr:\n%s", status, stdout, want, stderr)
	}
	st, err := os.Stat(filepath.Join(w.workspace, "from-guest"))
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Sys().(*syscall.Stat_t); s.Uid != 1234 || s.Gid != 1235 {
		t.Errorf("/workspace/from-guest on the host: owner %d:%d, want 1234:1235", s.Uid, s.Gid)
	}

	// A variable the user passed wins over the login environment.
	status, stdout, stderr = w.run("", "--uid", "1234", "--gid", "1235", "-e", "HOME=/tmp", "--", "sh", "-c", "echo $HOME")
	if status != 0 || stdout != "/tmp\n" {
		t.Errorf("loftd -e HOME=/tmp = %d, %q, want /tmp (stderr %q)", status, stdout, stderr)
	}

	status, stdout, stderr = w.run("", "--root", "--", "sh", "-c", "id -u; id -g; echo $HOME $USER; cat /proc/sys/kernel/dmesg_restrict")
	if want := "0\n0\n/root root\n1\n"; status != 0 || stdout != want {
		t.Errorf("loftd --root = %d, %q, want %q (stderr %q)", status, stdout, want, stderr)
	}

	// No command: the user's login shell (busybox: /bin/sh), reading stdin.
	status, stdout, stderr = w.run("id -un; echo $0\n", "--uid", "1234", "--gid", "1235")
	if status != 0 || !strings.HasPrefix(stdout, "dev\n") || !strings.Contains(stdout, "sh") {
		t.Errorf("loftd (no command) = %d, %q, want dev and the shell (stderr %q)", status, stdout, stderr)
	}

	// The image's own user with that uid is reused, not duplicated.
	passwd := "root:x:0:0:root:/root:/bin/sh\ndebian:x:1234:1235:Debian:/home/debian:/bin/sh\n"
	if err := os.WriteFile(filepath.Join(w.root, "etc/passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	status, stdout, stderr = w.run("", "--uid", "1234", "--gid", "1235", "--", "sh", "-c", "id -un; echo $HOME; cat /etc/passwd")
	if want := "debian\n/home/debian\n" + passwd; status != 0 || stdout != want {
		t.Errorf("image with uid 1234 = %d, %q, want %q (stderr %q)", status, stdout, want, stderr)
	}
}

// TestBaseline: what every Linux program expects is there, in a root that
// has none of it: lo up and 127.0.0.1 bindable, /dev/shm a 1777 tmpfs,
// /dev/mqueue, the /dev/fd links, /etc/hosts (the image's lines kept), the
// hostname (the workspace's name), /etc/mtab.
func TestBaseline(t *testing.T) {
	w := newWorld(t)
	w.workspace = filepath.Join(t.TempDir(), "My_Proj")
	if err := os.Mkdir(w.workspace, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(w.workspace, guestUID, guestUID); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.root, "etc/hosts"), []byte("10.1.2.3 db"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `echo lo $(( $(cat /sys/class/net/lo/flags) & 1 ))
httpd -p 127.0.0.1:8080 -h /tmp && echo bound
stat -c '%a' /dev/shm; awk '$2 == "/dev/shm" || $2 == "/dev/mqueue" {print $2, $3}' /proc/mounts
for f in /dev/fd /dev/stdin /dev/stdout /dev/stderr /etc/mtab; do readlink $f; done
hostname; cat /etc/hosts`
	// --network none: the baseline alone (the network adds its own
	// /etc/hosts line, host.containers.internal: TestNetworkHostAccess).
	status, stdout, stderr := w.run("", "--network", "none", "--", "sh", "-c", script)
	want := "lo 1\nbound\n1777\n/dev/shm tmpfs\n/dev/mqueue mqueue\n" +
		"/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\n/proc/self/mounts\n" +
		"my-proj\n10.1.2.3 db\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tmy-proj\n"
	if status != 0 || stdout != want {
		t.Errorf("baseline = %d, stdout\n%s\nwant\n%s\nstderr:\n%s", status, stdout, want, stderr)
	}
}

package guestinit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestEnsureUser(t *testing.T) {
	const debianPasswd = "root:x:0:0:root:/root:/bin/bash\ndebian:x:1000:1000:Debian:/home/debian:/bin/bash\n"
	tests := []struct {
		name                  string
		passwd, group, shadow *string // nil: the file does not exist
		uid, gid              int
		shells                []string
		want                  account
		wantPasswd, wantGroup string
		wantShadow            string
	}{
		{
			name: "image without the files (busybox)",
			uid:  1000, gid: 1000, shells: []string{"/bin/sh"},
			want:       account{Name: "dev", UID: 1000, GID: 1000, Home: "/home/dev", Shell: "/bin/sh", OldUID: 1000, OldGID: 1000},
			wantPasswd: "root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000::/home/dev:/bin/sh\n",
			wantGroup:  "root:x:0:\ndev:x:1000:\n",
			wantShadow: "root:*::0:99999:7:::\ndev:!::0:99999:7:::\n",
		},
		{
			name:   "image without the uid: bash preferred",
			passwd: ptr("root:x:0:0:root:/root:/bin/bash\n"), group: ptr("root:x:0:\n"), shadow: ptr("root:*:19000:0:99999:7:::\n"),
			uid: 1001, gid: 1002, shells: []string{"/bin/sh", "/bin/bash"},
			want:       account{Name: "dev", UID: 1001, GID: 1002, Home: "/home/dev", Shell: "/bin/bash", OldUID: 1001, OldGID: 1002},
			wantPasswd: "root:x:0:0:root:/root:/bin/bash\ndev:x:1001:1002::/home/dev:/bin/bash\n",
			wantGroup:  "root:x:0:\ndev:x:1002:\n",
			wantShadow: "root:*:19000:0:99999:7:::\ndev:!::0:99999:7:::\n",
		},
		{
			name:   "uid 1000 is the image's debian: reused, not duplicated",
			passwd: ptr(debianPasswd), group: ptr("root:x:0:\ndebian:x:1000:\n"), shadow: ptr("debian:!:19000:0:99999:7:::\n"),
			uid: 1000, gid: 1000, shells: []string{"/bin/sh", "/bin/bash"},
			want:       account{Name: "debian", UID: 1000, GID: 1000, Home: "/home/debian", Shell: "/bin/bash", OldUID: 1000, OldGID: 1000},
			wantPasswd: debianPasswd,
			wantGroup:  "root:x:0:\ndebian:x:1000:\n",
			wantShadow: "debian:!:19000:0:99999:7:::\n",
		},
		{
			name:   "dev at another uid: renumbered, its home and shell kept",
			passwd: ptr("root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:Dev:/srv/dev:/bin/bash\n"),
			group:  ptr("root:x:0:\ndev:x:1000:\n"), shadow: ptr("dev:!:19000:0:99999:7:::\n"),
			uid: 1234, gid: 1234, shells: []string{"/bin/sh", "/bin/bash"},
			want:       account{Name: "dev", UID: 1234, GID: 1234, Home: "/srv/dev", Shell: "/bin/bash", OldUID: 1000, OldGID: 1000},
			wantPasswd: "root:x:0:0:root:/root:/bin/sh\ndev:x:1234:1234:Dev:/srv/dev:/bin/bash\n",
			wantGroup:  "root:x:0:\ndev:x:1234:\n",
			wantShadow: "dev:!:19000:0:99999:7:::\n",
		},
		{
			name:   "no trailing newline, nologin shell, gid taken by another group",
			passwd: ptr("root:x:0:0:root:/root:/bin/sh\nsvc:x:1000:50::/var/svc:/usr/sbin/nologin"),
			group:  ptr("root:x:0:\nstaff:x:50:"), shadow: nil,
			uid: 1000, gid: 50, shells: []string{"/bin/sh"},
			want:       account{Name: "svc", UID: 1000, GID: 50, Home: "/var/svc", Shell: "/bin/sh", OldUID: 1000, OldGID: 50},
			wantPasswd: "root:x:0:0:root:/root:/bin/sh\nsvc:x:1000:50::/var/svc:/usr/sbin/nologin\n",
			wantGroup:  "root:x:0:\nstaff:x:50:\n",
			wantShadow: "root:*::0:99999:7:::\nsvc:!::0:99999:7:::\n",
		},
		{
			name:   "appended after a file without trailing newline",
			passwd: ptr("root:x:0:0:root:/root:/bin/sh"), group: ptr("root:x:0:"), shadow: ptr("root:*:19000:0:99999:7:::"),
			uid: 1000, gid: 1000, shells: []string{"/bin/sh"},
			want:       account{Name: "dev", UID: 1000, GID: 1000, Home: "/home/dev", Shell: "/bin/sh", OldUID: 1000, OldGID: 1000},
			wantPasswd: "root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000::/home/dev:/bin/sh\n",
			wantGroup:  "root:x:0:\ndev:x:1000:\n",
			wantShadow: "root:*:19000:0:99999:7:::\ndev:!::0:99999:7:::\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &userDB{passwd: dbOf(tt.passwd), group: dbOf(tt.group), shadow: dbOf(tt.shadow)}
			got, err := ensureUser(db, "dev", tt.uid, tt.gid, func(p string) bool { return slices.Contains(tt.shells, p) })
			if err != nil {
				t.Fatal(err)
			}
			if !equalAccount(got, tt.want) {
				t.Errorf("account = %+v, want %+v", got, tt.want)
			}
			for _, f := range []struct {
				name      string
				got, want string
			}{
				{"passwd", string(db.passwd.bytes()), tt.wantPasswd},
				{"group", string(db.group.bytes()), tt.wantGroup},
				{"shadow", string(db.shadow.bytes()), tt.wantShadow},
			} {
				if f.got != f.want {
					t.Errorf("/etc/%s =\n%s\nwant\n%s", f.name, f.got, f.want)
				}
			}
			if tt.name == "uid 1000 is the image's debian: reused, not duplicated" && (db.passwd.changed || db.group.changed || db.shadow.changed) {
				t.Errorf("reused entry: files changed (%v %v %v), want untouched", db.passwd.changed, db.group.changed, db.shadow.changed)
			}
		})
	}
}

func TestSupplementaryGroup(t *testing.T) {
	group := parseDB([]byte("root:x:0:\nkvm:x:993:alice\ndev:x:1000:\n"), true)
	if gid := supplementaryGroup(group, "kvm", 993, "dev"); gid != 993 {
		t.Errorf("device of group 993 (kvm): gid %d, want 993", gid)
	}
	if gid := supplementaryGroup(group, "kvm", 993, "dev"); gid != 993 {
		t.Errorf("twice: gid %d, want 993", gid)
	}
	// A root-owned device (devtmpfs without udev) gets a new system group.
	if gid := supplementaryGroup(group, "tun", 0, "dev"); gid != 999 {
		t.Errorf("root-owned tun: gid %d, want 999", gid)
	}
	if gid := supplementaryGroup(group, "net", 77, "dev"); gid != 77 {
		t.Errorf("device of an unknown group 77: gid %d, want 77", gid)
	}
	want := "root:x:0:\nkvm:x:993:alice,dev\ndev:x:1000:\ntun:x:999:dev\nnet:x:77:dev\n"
	if got := string(group.bytes()); got != want {
		t.Errorf("/etc/group =\n%s\nwant\n%s", got, want)
	}
	if got, want := memberGroups(group, "dev", 1000), []int{993, 999, 77}; !slices.Equal(got, want) {
		t.Errorf("memberGroups(dev) = %v, want %v", got, want)
	}
	if got := memberGroups(group, "alice", 1000); !slices.Equal(got, []int{993}) {
		t.Errorf("memberGroups(alice) = %v, want [993]", got)
	}
}

func TestUserEnv(t *testing.T) {
	env := []string{"PATH=/bin", "HOME=/root", "TERM=linux", "LANG=C.UTF-8", "FOO=bar", "LOFTD_MODE=enter"}
	who := account{Name: "dev", UID: 1000, GID: 1000, Home: "/home/dev", Shell: "/bin/bash"}
	tests := []struct {
		name     string
		fromHost []string
		want     []string
	}{
		{"defaults replaced", []string{"LOFTD_MODE=enter", "FOO=bar"},
			[]string{"PATH=/bin", "TERM=linux", "LANG=C.UTF-8", "FOO=bar", "LOFTD_MODE=enter",
				"HOME=/home/dev", "USER=dev", "LOGNAME=dev", "SHELL=/bin/bash", "XDG_RUNTIME_DIR=/run/user/1000"}},
		{"-e HOME kept", []string{"HOME=/root", "FOO=bar"},
			[]string{"PATH=/bin", "HOME=/root", "TERM=linux", "LANG=C.UTF-8", "FOO=bar", "LOFTD_MODE=enter",
				"USER=dev", "LOGNAME=dev", "SHELL=/bin/bash", "XDG_RUNTIME_DIR=/run/user/1000"}},
	}
	for _, tt := range tests {
		if got := userEnv(env, tt.fromHost, who, "/run/user/1000"); !slices.Equal(got, tt.want) {
			t.Errorf("%s: userEnv = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestDropCred(t *testing.T) {
	e := &enter{cmd: []string{"id", "-u"}}
	if cred, err := e.dropCred(); cred != nil || err != nil {
		t.Errorf("--root: dropCred = %+v, %v; want none", cred, err)
	}
	e.drop = &account{UID: 1000, GID: 1001, Groups: []int{993, 999}}
	cred, err := e.dropCred()
	if err != nil || cred.Uid != 1000 || cred.Gid != 1001 || !slices.Equal(cred.Groups, []uint32{993, 999}) {
		t.Errorf("dropCred = %+v, %v; want 1000:1001 groups 993,999", cred, err)
	}
	e.drop = &account{UID: 0, GID: 0}
	if cred, err := e.dropCred(); err == nil || !strings.Contains(err.Error(), "--root") {
		t.Errorf("drop to uid 0: %+v, %v; want an error naming --root", cred, err)
	}
	if got := e.command(); !slices.Equal(got, []string{"id", "-u"}) {
		t.Errorf("command = %q, want the command itself", got)
	}
	e2 := &enter{shell: "/bin/bash"}
	if got := e2.command(); !slices.Equal(got, []string{"/bin/bash", "-l"}) {
		t.Errorf("no command: %q, want the login shell /bin/bash -l", got)
	}
}

// TestDropStart starts commands with dropCred's credential as runWorkload
// does and reads what the workload got from /proc/self/status: the ids, the
// groups, and no capability left (so setuid(0) cannot succeed); a missing
// or unexecutable command keeps a shell's codes.
func TestDropStart(t *testing.T) {
	testenv.RequireRoot(t)
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Fatal(err)
	}
	e := &enter{drop: &account{UID: 1234, GID: 1235, Groups: []int{7, 8}}}
	cred, err := e.dropCred()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		argv []string
		want []string
		code int
	}{
		{[]string{cat, "/proc/self/status"}, []string{"Uid:\t1234\t1234\t1234\t1234\n", "Gid:\t1235\t1235\t1235\t1235\n",
			"Groups:\t7 8", "CapPrm:\t0000000000000000\n", "CapEff:\t0000000000000000\n", "CapAmb:\t0000000000000000\n"}, 0},
		{[]string{"/no/such/command"}, []string{"no such file"}, 127},
		{[]string{filepath.Dir(cat)}, nil, 126},
	} {
		out, err := os.CreateTemp(t.TempDir(), "out")
		if err != nil {
			t.Fatal(err)
		}
		// With the check the init makes on the workload (verifyDropped):
		// a real drop passes it.
		verify := func(pid int) error { return verifyDropped(pid, 1234, 1235) }
		code := runChecked(tt.argv, "/", []*os.File{nil, out, out}, &syscall.SysProcAttr{Credential: cred}, verify, out)
		data, _ := os.ReadFile(out.Name())
		out.Close()
		if code != tt.code {
			t.Errorf("%q: status %d, want %d (output %q)", tt.argv, code, tt.code, data)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(data), w) {
				t.Errorf("%q: output lacks %q:\n%s", tt.argv, w, data)
			}
		}
	}
}

func TestHostsAdditions(t *testing.T) {
	tests := []struct {
		name, hosts, hostname string
		want                  []string
	}{
		{"none", "", "proj", []string{"127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "127.0.1.1\tproj"}},
		{"debian's", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", "proj", []string{"127.0.1.1\tproj"}},
		{"complete", "127.0.0.1 localhost proj # comment\n::1 localhost\n", "proj", nil},
		{"commented out", "# 127.0.0.1 localhost\n::1 localhost", "", []string{"127.0.0.1\tlocalhost"}},
	}
	for _, tt := range tests {
		if got := hostsAdditions([]byte(tt.hosts), tt.hostname); !slices.Equal(got, tt.want) {
			t.Errorf("%s: hostsAdditions = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func ptr(s string) *string { return &s }

func dbOf(s *string) *dbFile {
	if s == nil {
		return parseDB(nil, false)
	}
	return parseDB([]byte(*s), true)
}

func equalAccount(a, b account) bool {
	return a.Name == b.Name && a.UID == b.UID && a.GID == b.GID && a.Home == b.Home && a.Shell == b.Shell &&
		a.OldUID == b.OldUID && a.OldGID == b.OldGID && slices.Equal(a.Groups, b.Groups)
}

// TestLoUp sets lo up in a new network namespace, where it starts down.
func TestLoUp(t *testing.T) {
	if os.Getenv("LOFTD_TEST_LOUP") != "" {
		before := loFlags()
		if err := loUp(); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		fmt.Printf("up before %v after %v\n", before&unix.IFF_UP != 0, loFlags()&unix.IFF_UP != 0)
		os.Exit(0)
	}
	testenv.RequireRoot(t)
	c := exec.Command(os.Args[0], "-test.run=^TestLoUp$")
	c.Env = append(os.Environ(), "LOFTD_TEST_LOUP=1")
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "up before false after true") {
		t.Fatalf("loUp in a new network namespace: %v %s, want lo down before and up after", err, out)
	}
}

func loFlags() uint16 {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return 0xffff
	}
	defer unix.Close(fd)
	ifr, _ := unix.NewIfreq("lo")
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return 0xffff
	}
	return ifr.Uint16()
}

// TestSetupUser runs the user step on a root whose dev is at another uid:
// the entry is renumbered, what dev owned in its home follows, the runtime
// directory is made, and the environment and the drop are the user's.
func TestSetupUser(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	for p, data := range map[string]string{
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000::/srv/dev:/bin/sh\n",
		"etc/group":    "root:x:0:\ndev:x:1000:\nusers:x:100:dev\n",
		"srv/dev/file": "x",
		"bin/sh":       "",
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"srv/dev", "srv/dev/file"} {
		os.Chown(filepath.Join(root, p), 1000, 1000)
	}
	f := &fakeSystem{environ: []string{"PATH=/bin", "HOME=/root"}}
	sys := f.system(t)
	sys.SysRoot = root
	e := newEnter(sys, false, nil)
	e.guest.User, e.guest.UID, e.guest.GID = "dev", 1234, 1235
	if err := e.setupUser(); err != nil {
		t.Fatal(err)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if want := "root:x:0:0:root:/root:/bin/sh\ndev:x:1234:1235::/srv/dev:/bin/sh\n"; string(passwd) != want {
		t.Errorf("/etc/passwd = %q, want %q", passwd, want)
	}
	for p, want := range map[string]string{"srv/dev/file": "1234:1235 755", "run/user/1234": "1234:1235 700", "etc/shadow": "0:0 600"} {
		st, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		s := st.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%d:%d %o", s.Uid, s.Gid, st.Mode().Perm()); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
	if e.drop == nil || e.drop.UID != 1234 || e.drop.GID != 1235 || !slices.Equal(e.drop.Groups, []int{100}) {
		t.Errorf("drop = %+v, want 1234:1235 with group 100 (users)", e.drop)
	}
	want := []string{"PATH=/bin", "HOME=/srv/dev", "USER=dev", "LOGNAME=dev", "SHELL=/bin/sh", "XDG_RUNTIME_DIR=/run/user/1234"}
	if !slices.Equal(f.env, want) {
		t.Errorf("env = %q, want %q", f.env, want)
	}
	if got := e.command(); !slices.Equal(got, []string{"/bin/sh", "-l"}) {
		t.Errorf("default command = %q, want /bin/sh -l", got)
	}
}

func TestCheckDropped(t *testing.T) {
	const ok = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGid:\t1001\t1001\t1001\t1001\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapAmb:\t0000000000000000\n"
	tests := []struct {
		name, status string
		wantErr      bool
	}{
		{"dropped", ok, false},
		{"saved uid still root", strings.Replace(ok, "Uid:\t1000\t1000\t1000\t1000", "Uid:\t1000\t1000\t0\t1000", 1), true},
		{"gid kept", strings.Replace(ok, "Gid:\t1001\t1001\t1001\t1001", "Gid:\t0\t0\t0\t0", 1), true},
		{"capabilities kept", strings.Replace(ok, "CapPrm:\t0000000000000000", "CapPrm:\t000001ffffffffff", 1), true},
		{"ambient capability", strings.Replace(ok, "CapAmb:\t0000000000000000", "CapAmb:\t0000000000000400", 1), true},
		{"line missing", strings.Replace(ok, "CapEff:\t0000000000000000\n", "", 1), true},
	}
	for _, tt := range tests {
		if err := checkDropped(tt.status, 1000, 1001); (err != nil) != tt.wantErr {
			t.Errorf("%s: checkDropped = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

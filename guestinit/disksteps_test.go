package guestinit

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loftd/loftd/contract"
)

// guestRoot makes a guest root in a temporary directory with the given
// executables (shell scripts) and an /etc/passwd and /etc/group.
func guestRoot(t *testing.T, bins map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for _, dir := range []string{"etc", "usr/bin", "dev", "proc", "run/loftd"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":  "root:x:0:\n",
	}
	for p, content := range files {
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, script := range bins {
		if err := os.WriteFile(filepath.Join(root, "usr/bin", name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// testIDs is the user the prepared files are given to: 1000 when the test
// may chown, else the test's own ids.
func testIDs() (uid, gid int) {
	if os.Geteuid() == 0 {
		return 1000, 1000
	}
	return os.Getuid(), os.Getgid()
}

func diskPrepFor(t *testing.T, root string, f *fakeSystem) *enter {
	t.Helper()
	sys := f.system(t)
	sys.SysRoot = root
	e := newEnter(sys, false, []string{"true"})
	uid, gid := testIDs()
	e.guest = contract.Guest{Mode: contract.ModeEnter, User: "dev", UID: uid, GID: gid,
		NixDisk: contract.NixDiskID, ContainersDisk: contract.ContainersDiskID}
	return e
}

func TestDiskStepList(t *testing.T) {
	const sh = "#!/bin/sh\n"
	base := []string{
		"find disks by btrfs label LOFTD_NIX LOFTD_CONTAINERS",
		"mount -t btrfs -o nodev,noatime LABEL=LOFTD_NIX /run/loftd/nix-disk",
		"mount -t overlay -o nodev,noatime,lowerdir=/nix,upperdir=/run/loftd/nix-disk/upper,workdir=/run/loftd/nix-disk/work overlay /nix",
		"seed /nix/var once; chown root:nixbld /nix/store; chmod 1775 /nix/store",
	}
	daemon := "nix-daemon & (socket-activated on /nix/var/nix/daemon-socket/socket); NIX_REMOTE=daemon"
	containers := []string{
		"mount -t btrfs -o nosuid,nodev,noatime,user_subvol_rm_allowed LABEL=LOFTD_CONTAINERS /home/dev/.local/share/containers",
		"write /home/dev/.config/containers/{storage,containers,registries}.conf policy.json; /etc/subuid /etc/subgid; /dev/net/tun /dev/shm",
	}
	uid, _ := testIDs()
	podman := []string{
		"listen /dev/log (to /run/loftd/syslog.log; podman --syslog needs it)",
		"podman images & (as dev, once the guest is idle; system migrate at once when another Podman used the store)",
		"listen /run/user/" + strconv.Itoa(uid) + "/podman/podman.sock (podman system service on first use); DOCKER_HOST",
	}
	shim := "write /usr/local/bin/docker (exec podman)"
	sysbox := []string{"/usr/bin/sysbox-mgr & (log /run/loftd/sysbox-mgr.log)", "/usr/bin/sysbox-fs & (log /run/loftd/sysbox-fs.log)"}
	cat := func(parts ...any) []string {
		var out []string
		for _, p := range parts {
			switch p := p.(type) {
			case string:
				out = append(out, p)
			case []string:
				out = append(out, p...)
			}
		}
		return out
	}
	for _, tt := range []struct {
		name string
		bins []string
		want []string
	}{
		{"busybox-like image: no nix, no podman", []string{"sh"}, cat(base, containers)},
		{"default image", []string{"sh", "nix-daemon", "podman"}, cat(base, daemon, containers, shim, podman)},
		{"image with docker: no shim", []string{"sh", "podman", "docker"}, cat(base, containers, podman)},
		{"sysbox incomplete: skipped", []string{"sh", "podman", "sysbox-mgr", "sysbox-fs"}, cat(base, containers, shim, podman)},
		{"sysbox", []string{"sh", "podman", "sysbox-mgr", "sysbox-fs", "sysbox-runc"}, cat(base, containers, shim, podman, sysbox)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bins := map[string]string{}
			for _, b := range tt.bins {
				bins[b] = sh
			}
			e := diskPrepFor(t, guestRoot(t, bins), &fakeSystem{})
			var got []string
			for _, s := range e.diskSteps() {
				got = append(got, s.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("disk steps =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
	e := diskPrepFor(t, guestRoot(t, nil), &fakeSystem{})
	e.guest.NixDisk, e.guest.ContainersDisk = "", ""
	if s := e.diskSteps(); len(s) != 0 {
		t.Errorf("no disks in the contract: steps %v; want none", s)
	}
}

// TestDiskPrepRun runs the steps that need no real disk against a guest
// root in a directory (mounts are recorded by the fake system): the seed
// happens once, the config the user's Podman reads is written and theirs,
// sysbox is started and registered.
func TestDiskPrepRun(t *testing.T) {
	started := "#!/bin/sh\necho \"$0 $*\" > \"$(dirname \"$0\")/../../ran-$(basename \"$0\")\"\n"
	// nix-store: an image with Nix gets the nixbld build users.
	root := guestRoot(t, map[string]string{"sh": "", "podman": started, "nix-store": "",
		"sysbox-mgr": started, "sysbox-fs": started, "sysbox-runc": started})
	// The steps spawn the image's sh: the host's stands in for it.
	if err := os.Symlink("/bin/sh", filepath.Join(root, "usr/bin/sh.real")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "usr/bin/sh.real"), filepath.Join(root, "usr/bin/sh")); err != nil {
		t.Fatal(err)
	}
	f := &fakeSystem{}
	e := diskPrepFor(t, root, f)
	uid, gid := testIDs()
	d := &diskPrep{e: e, user: "dev", uid: uid, gid: gid, home: "/home/dev",
		disks: map[string]string{contract.NixLabel: "/dev/vdb", contract.ContainersLabel: "/dev/vda"}}

	for _, step := range []func() error{d.mountNixDisk, d.mountNixOverlay, d.seedNix, d.mountContainersDisk, d.writePodmanConfig, d.writeDockerShim} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{
		"btrfs /dev/vdb " + filepath.Join(root, NixDiskMount) + " ",
		"overlay overlay " + filepath.Join(root, "nix") + " lowerdir=" + filepath.Join(root, "nix") + ",upperdir=" + filepath.Join(root, NixDiskMount, "upper"),
		"btrfs /dev/vda " + filepath.Join(root, "home/dev/.local/share/containers") + " user_subvol_rm_allowed",
		"tmpfs shm " + filepath.Join(root, "dev/shm") + " mode=1777",
	} {
		if !slices.ContainsFunc(f.mounts, func(s string) bool { return strings.HasPrefix(s, m) }) {
			t.Errorf("mounts %q lack %q", f.mounts, m)
		}
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// The seed: once per disk; the build group on every boot.
	if !strings.Contains(read("/etc/group"), "nixbld:x:30000:nixbld1,") || !strings.Contains(read("/etc/passwd"), "nixbld10:x:30010:30000:") {
		t.Errorf("nixbld group/users not added:\n%s\n%s", read("/etc/group"), read("/etc/passwd"))
	}
	st, err := os.Stat(filepath.Join(root, "nix/store"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o775 || st.Mode()&os.ModeSticky == 0 || (os.Geteuid() == 0 && st.Sys().(*syscall.Stat_t).Gid != 30000) {
		t.Errorf("/nix/store mode %v gid %d; want 1775 root:nixbld(30000)", st.Mode(), st.Sys().(*syscall.Stat_t).Gid)
	}
	if err := os.WriteFile(filepath.Join(root, "nix/var/nix/db/db.sqlite"), []byte("user's"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "nix/var/nix/temproots")); err != nil {
		t.Fatal(err)
	}
	if err := d.seedNix(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "nix/var/nix/temproots")); err == nil {
		t.Errorf("second boot re-seeded /nix/var (temproots made again); want the marker to stop it")
	}
	if n := strings.Count(read("/etc/group"), "nixbld:"); n != 1 {
		t.Errorf("/etc/group has %d nixbld groups after two boots", n)
	}

	// Podman's config, the user's.
	for p, want := range map[string]string{
		"/home/dev/.config/containers/storage.conf":    `graphroot = "/home/dev/.local/share/containers/storage"`,
		"/home/dev/.config/containers/containers.conf": `cgroups = "disabled"`,
		"/home/dev/.config/containers/registries.conf": `unqualified-search-registries`,
		"/home/dev/.config/containers/policy.json":     `insecureAcceptAnything`,
		"/etc/subuid":           "dev:100000:65536\n",
		"/etc/subgid":           "dev:100000:65536\n",
		"/usr/local/bin/docker": `exec podman "$@"`,
	} {
		if got := read(p); !strings.Contains(got, want) {
			t.Errorf("%s lacks %q:\n%s", p, want, got)
		}
	}
	for _, want := range []string{`driver = "btrfs"`, `runroot = "/run/user/` + strconv.Itoa(uid) + `/containers"`} {
		if !strings.Contains(read("/home/dev/.config/containers/storage.conf"), want) {
			t.Errorf("storage.conf lacks %q", want)
		}
	}
	conf := read("/home/dev/.config/containers/containers.conf")
	for _, want := range []string{`cgroup_manager = "cgroupfs"`, `events_logger = "file"`, `runtime = "crun"`,
		`sysbox-runc = ["/usr/bin/sysbox-runc"]`, `netns = "slirp4netns"`} {
		if !strings.Contains(conf, want) {
			t.Errorf("containers.conf lacks %q:\n%s", want, conf)
		}
	}
	for _, p := range []string{"/home/dev", "/home/dev/.config/containers/storage.conf", "/home/dev/.local/share/containers", "/run/user/" + strconv.Itoa(uid)} {
		st, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if s := st.Sys().(*syscall.Stat_t); int(s.Uid) != uid || int(s.Gid) != gid {
			t.Errorf("%s owned by %d:%d; want the user's %d:%d", p, s.Uid, s.Gid, uid, gid)
		}
	}
	if err := d.writePodmanConfig(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(read("/etc/subuid"), "dev:"); n != 1 {
		t.Errorf("/etc/subuid has %d ranges for dev after two boots", n)
	}

	// sysbox: both daemons started, in the background.
	for _, s := range d.sysboxSteps() {
		if err := s.Do(); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for _, b := range []string{"sysbox-mgr", "sysbox-fs"} {
		p := filepath.Join(root, "ran-"+b)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(p); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was not started: %v", b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "ran-sysbox-runc")); err == nil {
		t.Errorf("sysbox-runc was run; it is a runtime Podman runs, not a daemon")
	}
}

func TestSubIDRange(t *testing.T) {
	for _, tt := range []struct{ uid, gid, want int }{
		{1000, 1000, 100000},
		{0, 0, 100000},
		{100000, 1000, 100001},
		{120000, 100000, 120001},
		{165536, 1000, 100000},
	} {
		got := subIDRange(tt.uid, tt.gid)
		for _, id := range []int{0, tt.uid, tt.gid} {
			if id >= got && id < got+subIDCount {
				t.Errorf("subIDRange(%d, %d) = %d: its range holds id %d", tt.uid, tt.gid, got, id)
			}
		}
		if got != tt.want {
			t.Errorf("subIDRange(%d, %d) = %d, want %d", tt.uid, tt.gid, got, tt.want)
		}
	}
}

// TestNeedsMigrate: `podman system migrate` runs only for a store another
// Podman used last (it stops the rootless pause process under the user's
// first commands); a new disk gets the stamp at once.
func TestNeedsMigrate(t *testing.T) {
	tests := []struct {
		name    string
		stamp   string // on the disk; "-" for none
		storage bool   // the disk holds a store
		want    bool
	}{
		{"new disk", "-", false, false},
		{"same podman", "CUR", true, false},
		{"another podman", "OLD", true, true},
		{"a store from before the stamp", "-", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			uid, gid := testIDs()
			d := &diskPrep{e: diskPrepFor(t, root, &fakeSystem{}), user: "dev", uid: uid, gid: gid, home: "/home/dev"}
			dir := filepath.Join(root, d.containersDir())
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.storage {
				if err := os.Mkdir(filepath.Join(dir, "storage"), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if tt.stamp != "-" {
				if err := os.WriteFile(filepath.Join(root, d.podmanStampPath()), []byte(tt.stamp), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := d.needsMigrate("CUR")
			if err != nil || got != tt.want {
				t.Fatalf("needsMigrate(%s) = %v, %v; want %v", tt.name, got, err, tt.want)
			}
			if data, err := os.ReadFile(filepath.Join(root, d.podmanStampPath())); tt.name == "new disk" && (err != nil || string(data) != "CUR") {
				t.Errorf("a new disk's stamp = %q, %v; want CUR", data, err)
			}
		})
	}
}

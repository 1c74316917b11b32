package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs"
)

// podmanSteps is what both sides of BenchmarkPodmanFirstRun time, as the
// guest user with the guest's Podman config, on a store that the prep (`podman
// images --quiet`, as the guest init runs it at boot) has just set up:
// `podman --version` (the floor of every podman command: the exec and the
// Go runtime's and podman's package init, no store, no namespace), the
// load of the busybox archive, then two `podman run --rm ... true`.
const podmanSteps = `ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
s=$(date +%s%N); podman --version >/dev/null; echo "VERSION_MS $(ms $s)"
s=$(date +%s%N); ref=$(podman load -q -i /workspace/bb.tar | sed "s/^[^:]*: //"); echo "LOAD_MS $(ms $s)"
s=$(date +%s%N); podman run --rm "$ref" true; echo "FIRST_MS $(ms $s)"
s=$(date +%s%N); podman run --rm "$ref" true; echo "SECOND_MS $(ms $s)"
`

// podmanVMScript waits for the guest init's background prep (the first
// `podman images` on the fresh containers disk), so that the load and the
// runs are timed apart from it; idly, with a sleep of half a second between
// looks, since the prep waits for an idle guest (guestinit/idle.go). It then copies the guest's Podman config and
// user entries into the workspace for the chroot to mirror.
const podmanVMScript = `set -e
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
s=$(date +%s%N); until grep -q "^exit" /run/loftd/podman-prep.status; do sleep 0.5; done; echo "PREP_WAIT_MS $(ms $s)"
echo "PREP $(cat /run/loftd/podman-prep.status)"
` + podmanSteps + `mkdir -p /workspace/mirror/etc /workspace/mirror/containers
cp /etc/passwd /etc/group /etc/subuid /etc/subgid /workspace/mirror/etc/
cp $HOME/.config/containers/* /workspace/mirror/containers/
`

// podmanChrootScript is the host side: the same prep and steps as the
// guest user. There is no prep in the background, so it runs first here.
const podmanChrootScript = `set -e
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
s=$(date +%s%N); podman images --quiet; echo "PREP exit 0 $(ms $s)ms"
` + podmanSteps

// BenchmarkPodmanFirstRun (issue 23): rootless Podman with the default
// image, in a fresh workspace each iteration (a fresh containers disk):
// the prep, `podman load` of a busybox archive, the first and second
// `podman run --rm bb true` in one VM; then the same on the host in a
// chroot of the same image (podmanChroot). Medians over the iterations.
func BenchmarkPodmanFirstRun(b *testing.B) {
	w := defaultImageWorld(b)
	testenv.RequireCommand(b, "unshare", "util-linux")
	testenv.RequireCommand(b, "pivot_root", "util-linux")
	testenv.RequireCommand(b, "taskset", "util-linux")
	var vm, ch []map[string]float64
	for b.Loop() {
		ws := b.TempDir()
		if err := os.Chown(ws, guestUID, guestUID); err != nil {
			b.Fatal(err)
		}
		busyboxArchive(b, ws)
		run := *w
		run.workspace = ws
		out, _ := run.session(asUser(strings.TrimSpace(podmanVMScript)))
		vm = append(vm, podmanFigures(b, "vm", out))
		ch = append(ch, podmanFigures(b, "chroot", podmanChroot(b, w.state, ws)))
	}
	b.StopTimer()
	med := func(runs []map[string]float64, k string) float64 {
		var v []float64
		for _, r := range runs {
			v = append(v, r[k])
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	for _, k := range []string{"prep", "version", "load", "first", "second"} {
		b.ReportMetric(med(vm, k), "ms-vm-"+k)
		b.ReportMetric(med(ch, k), "ms-chroot-"+k)
	}
	b.ReportMetric(med(vm, "prep-wait"), "ms-vm-prep-wait")
	b.ReportMetric(med(vm, "first")/med(vm, "second"), "first/second")
	b.ReportMetric(med(vm, "first")/med(ch, "first"), "first/chroot-first")
	b.ReportMetric(med(vm, "second")/med(ch, "second"), "second/chroot-second")
	b.ReportMetric(med(vm, "load")/med(ch, "load"), "load/chroot-load")
	b.ReportMetric(med(vm, "version")/med(ch, "version"), "version/chroot-version")
}

var podmanFigure = regexp.MustCompile(`(?m)^(PREP_WAIT|VERSION|LOAD|FIRST|SECOND)_MS (\d+)$|^PREP exit (\d+) (\d+)ms$`)

// podmanFigures reads the scripts' figures; a failed prep or a missing
// figure fails the benchmark.
func podmanFigures(b *testing.B, side, out string) map[string]float64 {
	b.Helper()
	f := map[string]float64{}
	for _, m := range podmanFigure.FindAllStringSubmatch(out, -1) {
		if m[3] != "" {
			if m[3] != "0" {
				b.Fatalf("%s: podman prep exited %s:\n%s", side, m[3], out)
			}
			f["prep"], _ = strconv.ParseFloat(m[4], 64)
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		f[map[string]string{"PREP_WAIT": "prep-wait", "VERSION": "version", "LOAD": "load", "FIRST": "first", "SECOND": "second"}[m[1]]] = v
	}
	for _, k := range []string{"prep", "version", "load", "first", "second"} {
		if _, ok := f[k]; !ok {
			b.Fatalf("%s: no %s figure in the output:\n%s", side, k, out)
		}
	}
	b.Logf("%s: %v", side, f)
	return f
}

// podmanChroot runs podmanChrootScript on the host in a root of the default
// image (an overlay task root from loftd's own store, as a run gets), with
// the image's podman, conmon, crun, slirp4netns and newuidmap, as the
// guest's user with the guest's /etc/passwd, subuids and Podman config
// (copied from the VM run in ws/mirror), on a fresh btrfs filesystem
// mounted user_subvol_rm_allowed as the containers disk is: the same
// driver, network (slirp4netns) and cgroup settings as the guest. It runs
// pinned to one CPU, as the VM has one vCPU. pivot_root, not chroot(2): the
// kernel refuses a user namespace to a chrooted process.
func podmanChroot(b *testing.B, state, ws string) string {
	b.Helper()
	store, err := rootfs.Open(rootfs.Options{Root: filepath.Join(state, "loftd", "images"), RunRoot: "/run/loftd"})
	if err != nil {
		b.Fatal(err)
	}
	img, err := store.Resolve(context.Background(), "localhost/loftd:latest", rootfs.PullNever, nil)
	if err != nil {
		store.Close()
		b.Fatal(err)
	}
	task, err := store.NewTask(context.Background(), img, filepath.Join(b.TempDir(), "task"), rootfs.BackendOverlay)
	store.Close()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := task.Remove(); err != nil {
			b.Error(err)
		}
	})
	disk := testenv.Btrfs(b)
	c := exec.Command("taskset", "-c", "0", "unshare", "--mount", "--propagation", "private", "sh", "-c", chrootSetup, "sh", task.Root, disk, ws, podmanChrootScript)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		b.Fatalf("podman in a chroot of the default image: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	return out.String()
}

// chrootSetup ($1 root, $2 btrfs mount, $3 workspace, $4 the user's script)
// gives the root what the guest init gives the guest: /proc, /sys with
// cgroup2 alone (crun refuses this host's hybrid layout), a /dev
// with /dev/net/tun and /dev/shm usable by the user, /run/user/UID, the
// user's containers store on btrfs, / a shared mount.
var chrootSetup = fmt.Sprintf(`set -e
R=$1
mount -t proc proc "$R/proc"
mount -t sysfs -o nosuid,nodev sysfs "$R/sys"; mount -t cgroup2 -o nosuid,nodev cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=755,nosuid tmpfs "$R/dev"
for n in null:3 zero:5 full:7 random:8 urandom:9; do mknod -m 666 "$R/dev/${n%%%%:*}" c 1 "${n#*:}"; done
mknod -m 666 "$R/dev/tty" c 5 0
mkdir "$R/dev/pts" "$R/dev/shm" "$R/dev/net"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"; ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$R/dev/shm"
mknod -m 666 "$R/dev/net/tun" c 10 200
mount -t tmpfs -o mode=755 tmpfs "$R/run"; mkdir -p -m 700 "$R/run/user/%[1]d"; chown %[1]d:%[1]d "$R/run/user/%[1]d"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mkdir -p "$R/workspace" "$R/home/dev/.local/share/containers" "$R/home/dev/.config/containers"
mount --bind "$3" "$R/workspace"
mount --bind "$2" "$R/home/dev/.local/share/containers"
cp "$3"/mirror/etc/* "$R/etc/"; cp "$3"/mirror/containers/* "$R/home/dev/.config/containers/"
chown -R %[1]d:%[1]d "$R/home/dev"
mkdir "$R/.oldroot"; cd "$R"; pivot_root . .oldroot
exec /bin/sh -c 'umount -l /.oldroot; rmdir /.oldroot; mount --make-rshared /; cd /
exec setpriv --reuid=%[1]d --regid=%[1]d --clear-groups env -i HOME=/home/dev USER=dev LOGNAME=dev PATH=/usr/local/bin:/usr/bin:/bin \
  XDG_RUNTIME_DIR=/run/user/%[1]d XDG_CONFIG_HOME=/home/dev/.config LANG=C.UTF-8 sh -c "$1"' sh "$4"
`, guestUID)

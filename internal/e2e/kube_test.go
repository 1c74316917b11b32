package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/deploy"
	"github.com/loftd/loftd/internal/testenv"
	corev1 "k8s.io/api/core/v1"
)

// podman runs Debian's Podman against a storage of the test's own, so
// nothing of the machine's containers is touched. Two quirks of this
// machine are worked around here, not in the manifests: the process may not
// raise its rlimits (Podman's default ulimits ask for more: the test's
// containers.conf gives today's), and crun refuses a hybrid cgroup layout
// (a v2 hierarchy beside the v1 controllers), so Podman starts pods in a
// mount namespace without /sys/fs/cgroup/unified; /run/netns is made a
// shared mount first (as Podman itself does) so its network namespaces
// stay visible outside that mount namespace.
type podman struct {
	t   *testing.T
	env []string
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	testenv.RequireCommand(t, "podman", "podman")
	testenv.RequireCommand(t, "unshare", "util-linux")
	user := testenv.RootlessUser(t) // its subordinate ids serve Podman's userns=auto
	dir := t.TempDir()
	storage := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n[storage.options]\nroot-auto-userns-user = %q\nauto-userns-min-size = 65536\nauto-userns-max-size = 65536\n",
		filepath.Join(dir, "graph"), filepath.Join(dir, "run"), user.Username)
	nofile, nproc := hardLimit(t, "Max open files"), min(hardLimit(t, "Max processes"), 16384)
	conf := fmt.Sprintf("[containers]\ndefault_ulimits = [\"nofile=%d:%d\", \"nproc=%d:%d\"]\n", nofile, nofile, nproc, nproc)
	for name, body := range map[string]string{"storage.conf": storage, "containers.conf": conf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &podman{t: t, env: append(os.Environ(), "CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"), "CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"))}
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		t.Fatal(err)
	}
	if exec.Command("mountpoint", "-q", "/run/netns").Run() != nil {
		if out, err := exec.Command("mount", "--bind", "/run/netns", "/run/netns").CombinedOutput(); err != nil {
			t.Fatalf("bind /run/netns: %v\n%s", err, out)
		}
	}
	if out, err := exec.Command("mount", "--make-shared", "/run/netns").CombinedOutput(); err != nil {
		t.Fatalf("share /run/netns: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = p.run("system", "reset", "--force") })
	return p
}

// hardLimit reads a hard limit of this process from /proc/self/limits.
func hardLimit(t *testing.T, name string) int {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			var soft, hard string
			fmt.Sscan(rest, &soft, &hard)
			var n int
			if _, err := fmt.Sscan(hard, &n); err == nil {
				return n
			}
			return 1 << 20 // unlimited
		}
	}
	t.Fatalf("no %q in /proc/self/limits", name)
	return 0
}

func (p *podman) run(args ...string) (string, error) {
	p.t.Helper()
	script := `if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi; exec podman "$@"`
	c := exec.Command("unshare", append([]string{"-m", "--propagation", "unchanged", "sh", "-c", script, "podman"}, args...)...)
	c.Env = p.env
	out, err := c.CombinedOutput()
	return string(out), err
}

func (p *podman) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("podman %q: %v\n%s", args, err, out)
	}
	return out
}

// play plays pod with kube play, taken down when the test ends. This
// machine has no KVM device plugin: the loftd container's request for one
// is dropped (the VM runs under TCG).
func (p *podman) play(pod *corev1.Pod) {
	p.t.Helper()
	for i := range pod.Spec.Containers {
		delete(pod.Spec.Containers[i].Resources.Limits, "devices.kubevirt.io/kvm")
		delete(pod.Spec.Containers[i].Resources.Requests, "devices.kubevirt.io/kvm")
	}
	manifest, err := deploy.YAML(pod)
	if err != nil {
		p.t.Fatal(err)
	}
	file := filepath.Join(p.t.TempDir(), "pod.yaml")
	if err := os.WriteFile(file, manifest, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { _, _ = p.run("kube", "down", file) })
	if out, err := p.run("kube", "play", file); err != nil {
		p.t.Fatalf("podman kube play: %v\n%s\nmanifest:\n%s", err, out, manifest)
	}
}

// runnerImage builds loftd's runner image from deploy/Containerfile with
// loftd's own Buildah path (offline Debian base) and loads it into p.
func runnerImage(t *testing.T, w *world, p *podman) {
	t.Helper()
	loftd := func(args ...string) {
		t.Helper()
		c := w.cmd()
		c.Args = append([]string{bins.loftd}, args...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("loftd %q: %v\n%s", args, err, out)
		}
	}
	loftd("image", "import", "--tag", "localhost/debian-base:bookworm", debianBase(t))
	ctx := filepath.Join(t.TempDir(), "ctx")
	if out, err := exec.Command("../../scripts/runner-context", ctx).CombinedOutput(); err != nil {
		t.Fatalf("scripts/runner-context: %v\n%s", err, out)
	}
	loftd("image", "build", "--file", "../../deploy/Containerfile", "--base", "localhost/debian-base:bookworm", "--tag", "localhost/loftd-runner", ctx)
	archive := filepath.Join(t.TempDir(), "runner.tar")
	loftd("image", "push", "localhost/loftd-runner", "docker-archive:"+archive+":localhost/loftd-runner:latest")
	p.must("load", "-i", archive)
}

// TestKubeJob plays deploy/job.yaml's pod with Podman's kube play: an init
// container clones the project, the loftd container boots a VM against it
// in a user namespace of its own (hostUsers: false) with SYS_ADMIN only,
// and the container's exit status is the workload's.
func TestKubeJob(t *testing.T) {
	w := newWorld(t)
	p := newPodman(t)
	runnerImage(t, w, p)

	// The project: a git repository with a CI script that exits 7.
	repo := t.TempDir()
	gitc := func(args ...string) {
		c := exec.Command("git", append([]string{"-C", repo, "-c", "user.email=t@loftd", "-c", "user.name=t"}, args...)...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %q: %v\n%s", args, err, out)
		}
	}
	gitc("init", "-q")
	if err := os.WriteFile(filepath.Join(repo, "ci.sh"), []byte("#!/bin/sh\necho \"ci ran in $(pwd) on $(uname -r) as $(id -u)\"\nexit 7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	gitc("add", "ci.sh")
	gitc("commit", "-qm", "ci")
	// The pod's root is not the repository's owner: git wants it named safe.
	if err := os.WriteFile(filepath.Join(repo, ".git", "test-gitconfig"), []byte("[safe]\n\tdirectory = *\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	objs, err := deploy.Manifest("../../deploy", "job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pod, err := deploy.PodOf(objs[0], "loftd-job")
	if err != nil {
		t.Fatal(err)
	}
	// What the cluster would give: the repository (a local one here).
	clone := &pod.Spec.InitContainers[0]
	clone.Env = []corev1.EnvVar{{Name: "LOFTD_REPO", Value: "file:///src"}, {Name: "GIT_CONFIG_GLOBAL", Value: "/src/.git/test-gitconfig"}}
	clone.VolumeMounts = append(clone.VolumeMounts, corev1.VolumeMount{Name: "src", MountPath: "/src", ReadOnly: true})
	dir := corev1.HostPathDirectory
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "src", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: repo, Type: &dir}}})
	p.play(pod)
	ctr := "loftd-job-loftd"
	status := strings.TrimSpace(p.must("wait", ctr))
	logs := p.must("logs", ctr)
	if status != "7" || !strings.Contains(logs, "ci ran in /workspace") {
		t.Fatalf("the Job's container ended with %q; want 7, the workload's\nlogs:\n%s", status, logs)
	}
	if !strings.Contains(logs, "as 1000") {
		t.Errorf("the workload did not run as the guest user (1000):\n%s", logs)
	}
	if mode := strings.TrimSpace(p.must("inspect", "--format", "{{.HostConfig.UsernsMode}} {{.HostConfig.Privileged}}", ctr)); strings.HasSuffix(mode, "true") {
		t.Errorf("the loftd container ran privileged (%s)", mode)
	}
	if maps := p.must("inspect", "--format", "{{json .HostConfig.IDMappings}}", ctr); !strings.Contains(maps, ":65536") {
		t.Errorf("the loftd container has no user namespace of its own (uid map %s)", maps)
	}
}

// TestKubeStatefulSet plays deploy/statefulset.yaml's pod: its container
// keeps the workspace VM up, and `loftd exec` and `loftd -- CMD` through
// `podman exec` (kubectl exec on a cluster) run in that VM with the
// command's exit status. The PVCs become Podman volumes.
func TestKubeStatefulSet(t *testing.T) {
	w := newWorld(t)
	p := newPodman(t)
	runnerImage(t, w, p)
	objs, err := deploy.Manifest("../../deploy", "statefulset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pod, err := deploy.PodOf(objs[0], "loftd-ws")
	if err != nil {
		t.Fatal(err)
	}
	// The StatefulSet's claims, as the pod of replica 0 gets them.
	for _, name := range []string{"workspace", "state"} {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name + "-loftd-ws-0"}}})
	}
	p.play(pod)
	ctr := "loftd-ws-loftd"
	// The VM boots in the background of the pod's start: exec waits for it.
	var out string
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(2 * time.Second) {
		out, err = p.run("exec", ctr, "loftd", "exec", "--workspace", "/workspace", "--", "sh", "-c", "echo joined as $(id -u); exit 5")
		if !strings.Contains(out, "no VM runs") || time.Now().After(deadline) {
			break
		}
	}
	if code := exitCode(err); code != 5 || !strings.Contains(out, "joined as 1000") {
		logs, _ := p.run("logs", ctr)
		t.Fatalf("podman exec … loftd exec = %d, %q; want 5 and the guest user's output\npod log:\n%s", code, out, logs)
	}
	out, err = p.run("exec", ctr, "loftd", "--workspace", "/workspace", "--rootfs", "/opt/loftd/guest", "--debug", "--", "sh", "-c", "exit 6")
	if code := exitCode(err); code != 6 || !strings.Contains(out, "join") {
		t.Errorf("podman exec … loftd -- CMD = %d; want 6, run in the running VM (--debug says it joined)\n%s", code, out)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

package qemu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/helper"
	"github.com/loftd/loftd/helper/qemu"
	"github.com/loftd/loftd/launch"
)

// run is one VM run's inputs and outputs.
type run struct {
	cmd       []string
	env       []string
	workdir   string
	stdin     io.Reader
	shares    []launch.Share
	stdout    io.Writer // default: a buffer, in out
	out, errb bytes.Buffer
	runDir    string
	init      string // default contract.GuestInitPath
	vcpus     int    // default 1
}

func (g *guest) boot(t testing.TB, ctx context.Context, r *run) (int, error) {
	t.Helper()
	return g.bootWith(t, ctx, r, func(*qemu.Config) {})
}

func (g *guest) bootWith(t testing.TB, ctx context.Context, r *run, edit func(*qemu.Config)) (int, error) {
	t.Helper()
	// Root: these tests are about the VMM, not the guest user (the e2e
	// identity tests are), and write where only root may.
	env := append(contract.Guest{Mode: contract.ModeEnter, User: "dev", Root: true}.Env(), "PATH=/bin")
	env = append(env, r.env...)
	workdir := r.workdir
	if workdir == "" {
		workdir = "/"
	}
	kc, _ := json.Marshal(contract.KrunConfig{
		Cmd:        append([]string{contract.GuestInitPath, "enter", "--"}, r.cmd...),
		Env:        env,
		WorkingDir: workdir,
	})
	if err := os.WriteFile(filepath.Join(g.root, contract.KrunConfigPath), kc, 0o644); err != nil {
		t.Fatal(err)
	}
	if r.runDir == "" {
		r.runDir = t.TempDir()
	}
	init := r.init
	if init == "" {
		init = contract.GuestInitPath
	}
	vcpus := r.vcpus
	if vcpus == 0 {
		vcpus = 1
	}
	stdout := r.stdout
	if stdout == nil {
		stdout = &r.out
	}
	// A guest that hangs (say stdin's EOF got lost) fails the test rather
	// than the whole test binary's timeout.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	plan := &launch.Plan{
		Version: launch.Version, VMM: "qemu", VCPUs: vcpus, RAMMiB: 512,
		Root: g.root, Shares: r.shares, ExecPath: init,
	}
	cfg := qemu.Config{
		Plan: plan, QEMU: g.vm.QEMU, Virtiofsd: g.vm.Virtiofsd, Kernel: g.kernel, Accel: os.Getenv(qemu.AccelEnv),
		RunDir: r.runDir, Stdin: r.stdin, Stdout: stdout, Stderr: &r.errb,
	}
	edit(&cfg)
	return qemu.Run(ctx, cfg)
}

func TestExitStatus(t *testing.T) {
	g := setup(t)
	tests := []struct {
		name string
		cmd  []string
		env  []string
		want int
	}{
		{"exit 0", []string{"sh", "-c", "exit 0"}, nil, 0},
		{"exit 7", []string{"sh", "-c", "exit 7"}, nil, 7},
		{"not found", []string{"/no/such/command"}, nil, contract.ExitNotFound},
		{"not executable", []string{"/notexec"}, nil, contract.ExitNotExecutable},
		{"killed by SIGKILL", []string{"sh", "-c", "kill -9 $$"}, nil, 128 + 9},
		{"bad contract", []string{"true"}, []string{contract.EnvNetwork + "=carrier-pigeon"}, contract.ExitSetup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &run{cmd: tt.cmd, env: tt.env}
			got, err := g.boot(t, context.Background(), r)
			if err != nil || got != tt.want {
				t.Errorf("Run(%q) = %d, %v, want %d (stderr: %q)", tt.cmd, got, err, tt.want, r.errb.String())
			}
			// Setup failures and exec failures say why on the guest's stderr.
			if tt.want >= contract.ExitSetup && tt.want <= contract.ExitNotFound && !strings.Contains(r.errb.String(), "guest-init: ") {
				t.Errorf("Run(%q) stderr = %q, want a guest-init message", tt.cmd, r.errb.String())
			}
		})
	}
}

// TestNoStatus boots a guest whose init ends without reporting (the kernel
// runs /bin/true as init, exits, panics and reboots): Run must fail.
func TestNoStatus(t *testing.T) {
	g := setup(t)
	r := &run{cmd: []string{"true"}, init: "/bin/true"}
	if got, err := g.boot(t, context.Background(), r); err == nil {
		t.Errorf("Run(init=/bin/true) = %d, nil, want an error", got)
	} else if !strings.Contains(err.Error(), "without reporting") {
		t.Errorf("Run(init=/bin/true) error = %v, want one saying the VM did not report", err)
	}
}

func TestStdio(t *testing.T) {
	g := setup(t)
	t.Run("stdout and stderr separate, 1 MiB each", func(t *testing.T) {
		r := &run{cmd: []string{"sh", "-c", "cat /err.bin >&2 & cat /out.bin; wait"}}
		if got, err := g.boot(t, context.Background(), r); err != nil || got != 0 {
			t.Fatalf("Run() = %d, %v, want 0", got, err)
		}
		if !bytes.Equal(r.out.Bytes(), g.out) {
			t.Errorf("stdout: got %d bytes, want the %d bytes of out.bin", r.out.Len(), len(g.out))
		}
		if !bytes.Equal(r.errb.Bytes(), g.errb) {
			t.Errorf("stderr: got %d bytes, want the %d bytes of err.bin", r.errb.Len(), len(g.errb))
		}
	})
	t.Run("a failing stdout does not stall the guest", func(t *testing.T) {
		r := &run{cmd: []string{"sh", "-c", "cat /out.bin; exit 3"}, stdout: failWriter{}}
		if got, err := g.boot(t, context.Background(), r); err != nil || got != 3 {
			t.Errorf("Run(cat 1 MiB > failing writer) = %d, %v, want 3, <nil>", got, err)
		}
	})
	t.Run("stdin reaches cat, then EOF", func(t *testing.T) {
		r := &run{cmd: []string{"cat"}, stdin: strings.NewReader("data")}
		got, err := g.boot(t, context.Background(), r)
		if err != nil || got != 0 || r.out.String() != "data" {
			t.Errorf("Run(cat < data) = %d, %v, stdout %q, want 0, <nil>, %q", got, err, r.out.String(), "data")
		}
	})
}

func TestWorkspace(t *testing.T) {
	g := setup(t)
	ws := t.TempDir()
	r := &run{
		cmd:     []string{"sh", "-c", "echo hello > out.txt"},
		env:     []string{contract.EnvWorkspaceTag + "=" + contract.WorkspaceTag},
		workdir: contract.WorkspaceMount,
		shares:  []launch.Share{{Tag: contract.WorkspaceTag, Path: ws}},
	}
	if got, err := g.boot(t, context.Background(), r); err != nil || got != 0 {
		t.Fatalf("Run() = %d, %v, want 0 (stderr %q)", got, err, r.errb.String())
	}
	data, err := os.ReadFile(filepath.Join(ws, "out.txt"))
	if err != nil || string(data) != "hello\n" {
		t.Errorf("host %s/out.txt = %q, %v, want %q", ws, data, err, "hello\n")
	}
}

// TestDisks attaches raw disks and checks the guest sees them in order with
// their serials (the ids the guest init finds them by) and read-only flags.
func TestDisks(t *testing.T) {
	g := setup(t)
	dir := t.TempDir()
	var disks []launch.Disk
	for _, d := range []launch.Disk{{ID: contract.NixDiskID}, {ID: contract.ContainersDiskID, ReadOnly: true}} {
		d.Path = filepath.Join(dir, d.ID+".raw")
		if err := os.WriteFile(d.Path, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, d)
	}
	r := &run{cmd: []string{"sh", "-c", "for d in vda vdb; do echo $(cat /sys/block/$d/serial) $(cat /sys/block/$d/ro); done"}}
	got, err := g.bootWith(t, context.Background(), r, func(c *qemu.Config) { c.Plan.Disks = disks })
	want := contract.NixDiskID + " 0\n" + contract.ContainersDiskID + " 1\n"
	if err != nil || got != 0 || r.out.String() != want {
		t.Errorf("Run(disks %v) = %d, %v, stdout %q, want 0, <nil>, %q (stderr %q)", disks, got, err, r.out.String(), want, r.errb.String())
	}
}

func TestProfile(t *testing.T) {
	g := setup(t)
	r := &run{cmd: []string{"true"}, env: []string{contract.EnvProfile + "=1"}}
	if got, err := g.boot(t, context.Background(), r); err != nil || got != 0 {
		t.Fatalf("Run() = %d, %v, want 0", got, err)
	}
	t.Logf("guest stderr:\n%s", r.errb.String())
	for _, want := range []string{"guest-init: step mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp ", "guest-init: step run true ", "guest-init: total "} {
		if !strings.Contains(r.errb.String(), want) {
			t.Errorf("stderr with %s=1 = %q, want a line with %q", contract.EnvProfile, r.errb.String(), want)
		}
	}
}

// TestInterrupt ends a running VM from outside, by cancelling the context
// or by killing its root virtiofsd, and checks Run returns the right error
// and that no process of the run (QEMU, virtiofsd and the sandboxed child it
// forks) is left: QEMU is found by its command line, which names the run's
// directory, and each virtiofsd as this process's child (its command line
// names only an fd).
func TestInterrupt(t *testing.T) {
	g := setup(t)
	tests := []struct {
		name    string
		act     func(cancel context.CancelFunc) error
		wantErr string
	}{
		{"cancel", func(cancel context.CancelFunc) error { cancel(); return nil }, context.Canceled.Error()},
		{"virtiofsd killed", func(context.CancelFunc) error {
			pids := virtiofsdChildren()
			if len(pids) == 0 {
				return fmt.Errorf("no virtiofsd serving %s", g.root)
			}
			return syscall.Kill(pids[0], syscall.SIGKILL)
		}, "exited while the VM ran"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ready := &signalWriter{want: "ready", ch: make(chan struct{})}
			r := &run{cmd: []string{"sh", "-c", "echo ready; exec sleep 600"}, stdout: ready, runDir: t.TempDir()}
			done := make(chan error, 1)
			go func() {
				_, err := g.boot(t, ctx, r)
				done <- err
			}()
			select {
			case <-ready.ch:
			case err := <-done:
				t.Fatalf("Run() ended before the guest was ready: %v", err)
			case <-time.After(2 * time.Minute):
				t.Fatal("guest not ready after 2 minutes")
			}
			pids := append(pidsMentioning(r.runDir, g.root), virtiofsdChildren()...)
			if len(pids) < 2 {
				t.Errorf("running VM: found pids %v mentioning %s, want qemu and virtiofsd", pids, r.runDir)
			}
			if err := tt.act(cancel); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Run() after %s = %v, want an error containing %q", tt.name, err, tt.wantErr)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("Run() did not return 30 s after %s", tt.name)
			}
			if left := append(pidsMentioning(r.runDir, g.root), virtiofsdChildren()...); len(left) != 0 {
				t.Errorf("after %s, processes %v (were %v) are still running", tt.name, left, pids)
			}
		})
	}
}

// BenchmarkBoot measures a whole VM run of `true`: virtiofsd and QEMU start,
// kernel boot, guest init, status report, QEMU exit.
func BenchmarkBoot(b *testing.B) {
	g := setup(b)
	for b.Loop() {
		r := &run{cmd: []string{"true"}}
		if got, err := g.boot(b, context.Background(), r); err != nil || got != 0 {
			b.Fatalf("Run(true) = %d, %v", got, err)
		}
	}
}

// TestEarlyDeathBootsAgain: a VM that ends before the guest init started
// the workload, with nothing on its console, is booted once more, and the
// run succeeds. The first boot's init here is a script that records the
// boot and exits (PID 1 exiting: panic, reboot, no output), as a kernel
// dying in early boot would; the second boot runs the guest init.
func TestEarlyDeathBootsAgain(t *testing.T) {
	g := setup(t)
	marker := filepath.Join(g.root, "flaky-booted")
	script := filepath.Join(g.root, "flaky-init")
	body := "#!/bin/sh\nif [ -e /flaky-booted ]; then exec " + contract.GuestInitPath + "; fi\n: > /flaky-booted\nexit 0\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(script); os.Remove(marker) })
	r := &run{cmd: []string{"sh", "-c", "echo second boot"}, init: "/flaky-init", stdin: strings.NewReader("")}
	got, err := g.boot(t, context.Background(), r)
	if err != nil || got != 0 || r.out.String() != "second boot\n" {
		t.Fatalf("Run(first boot dies early) = %d, %v, stdout %q; want 0 and the second boot's output", got, err, r.out.String())
	}
	if _, err := os.Stat(filepath.Join(r.runDir, "console.log.boot1")); err != nil {
		t.Errorf("the failed boot's console log was not kept: %v", err)
	}
}

// TestVirtiofsdFlavorFromPlan: the backend serves the root with the
// virtiofsd flavor the plan carries and never asks virtiofsd itself (it
// once ran `virtiofsd --help` again in the helper). The virtiofsd is a
// stand-in script that logs each run and then runs the real one: the
// root's virtiofsd is started directly (a guarded share's goes through the
// seccomp wrapper, whose fexecve cannot run a script).
func TestVirtiofsdFlavorFromPlan(t *testing.T) {
	g := setup(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "runs.log")
	standIn := filepath.Join(dir, "virtiofsd")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nexec %s \"$@\"\n", log, g.vm.Virtiofsd)
	if err := os.WriteFile(standIn, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	flavor := qemu.VirtiofsdFlavorOf(g.vm.Virtiofsd) // as the parent finds it
	r := &run{cmd: []string{"true"}}
	got, err := g.bootWith(t, context.Background(), r, func(c *qemu.Config) {
		// What the helper does with the plan.
		c.Plan.Virtiofsd, c.Plan.VirtiofsdFlavor = standIn, flavor
		*c = helper.QEMUConfig(c.Plan, c.Kernel, c.RunDir)
		c.Stdout, c.Stderr, c.Accel = &r.out, &r.errb, os.Getenv(qemu.AccelEnv)
	})
	if err != nil || got != 0 {
		t.Fatalf("Run() = %d, %v, want 0 (stderr %q)", got, err, r.errb.String())
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	runs := strings.Split(strings.TrimSpace(string(data)), "\n")
	wantOpt := map[launch.VirtiofsdFlavor]string{launch.VirtiofsdRust: "--shared-dir", launch.VirtiofsdC: "source="}[flavor]
	if len(runs) != 1 || strings.Contains(runs[0], "--help") || !strings.Contains(runs[0], wantOpt) {
		t.Errorf("virtiofsd ran as %q; want once, for the root, with a %s virtiofsd's options (%s)", runs, flavor, wantOpt)
	}
}

// TestVirtiofsdFailsAtStart: a virtiofsd that refuses its share ends QEMU
// before the kernel prints a line. That is reported as virtiofsd's failure,
// quoting its log, and not booted again as an early kernel death (which
// once said "the kernel died in early boot" and booted twice).
func TestVirtiofsdFailsAtStart(t *testing.T) {
	g := setup(t)
	standIn := filepath.Join(t.TempDir(), "virtiofsd")
	script := "#!/bin/sh\necho 'stand-in virtiofsd: refusing this share' >&2\nexit 3\n"
	if err := os.WriteFile(standIn, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	flavor := qemu.VirtiofsdFlavorOf(g.vm.Virtiofsd)
	r := &run{cmd: []string{"true"}}
	_, err := g.bootWith(t, context.Background(), r, func(c *qemu.Config) {
		c.Plan.Virtiofsd, c.Plan.VirtiofsdFlavor = standIn, flavor
		*c = helper.QEMUConfig(c.Plan, c.Kernel, c.RunDir)
		c.Stdout, c.Stderr, c.Accel = &r.out, &r.errb, os.Getenv(qemu.AccelEnv)
	})
	if err == nil || !strings.Contains(err.Error(), "virtiofsd") || !strings.Contains(err.Error(), "refusing this share") ||
		strings.Contains(err.Error(), "early boot") {
		t.Errorf("Run() with a virtiofsd that refuses its share = %v; want its failure, quoting its log", err)
	}
	if _, err := os.Stat(filepath.Join(r.runDir, "console.log.boot1")); err == nil {
		t.Errorf("the VM was booted again after virtiofsd failed")
	}
	t.Logf("Run() = %v", err)
}

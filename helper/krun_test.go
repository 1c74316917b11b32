package helper

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/loftd/loftd/helper/live"
	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/libkrun"
	"github.com/loftd/loftd/libkrun/krundouble"
	"golang.org/x/crypto/ssh"
)

// krunPlan writes a krun plan whose library is the libkrun test double into
// a new task directory.
func krunPlan(t *testing.T, change func(*launch.Plan)) string {
	t.Helper()
	p := &launch.Plan{
		Version: launch.Version, VMM: "krun", Library: krundouble.Build(t),
		VCPUs: 2, RAMMiB: 1024, Root: "/s/tasks/t1/rootfs",
		Disks:    []launch.Disk{{ID: "loftd-nix", Path: "/s/w/nix.raw"}},
		Shares:   []launch.Share{{Tag: "loftd-workspace", Path: "/home/u/proj"}},
		Network:  launch.Network{Mode: "none"},
		ExecPath: "/.loftd/guest-init", Argv: []string{"enter", "--", "make"},
		Env: []string{"LOFTD_MODE=enter"}, Workdir: "/workspace",
	}
	change(p)
	dir := t.TempDir()
	if err := launch.Write(dir, p); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The helper's krun path reads the plan, loads the library it names and
// configures it through helper/krun; --dry-run stops short of krun_start_enter.
func TestHelperKrunDryRun(t *testing.T) {
	dir := krunPlan(t, func(*launch.Plan) {})
	log := krundouble.Record(t)
	h := &Helper{TaskDir: dir, DryRun: true}
	if status := h.Run(); status != 0 {
		t.Fatalf("Helper{krun, DryRun}.Run() = %d, want 0", status)
	}
	krundouble.Compare(t, "Helper.Run()", krundouble.Calls(t, log), []string{
		`krun_get_max_vcpus`,
		`krun_set_log_level level=0`,
		`krun_create_ctx`,
		`krun_set_vm_config ctx=0 vcpus=2 ram_mib=1024`,
		`krun_set_root ctx=0 path="/s/tasks/t1/rootfs"`,
		`krun_add_disk ctx=0 block_id="loftd-nix" path="/s/w/nix.raw" read_only=0`,
		`krun_add_virtiofs ctx=0 tag="loftd-workspace" path="/home/u/proj"`,
		`krun_disable_implicit_vsock ctx=0`,
	})
}

// A plan libkrun cannot run reaches the parent as one Error naming
// the phase and the limit, and the helper exits 125 without a call.
func TestHelperKrunRefusesTooManyVCPUs(t *testing.T) {
	dir := krunPlan(t, func(p *launch.Plan) { p.VCPUs = 9 })
	log := krundouble.Record(t)
	t.Setenv("KRUN_DOUBLE_MAX_VCPUS", "8") // KVM allows 8 here
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := &Helper{TaskDir: dir, ErrFile: w, DryRun: true}
	if status := h.Run(); status != 125 {
		t.Errorf("Helper{9 vCPUs}.Run() = %d, want 125", status)
	}
	var he Error
	if err := json.NewDecoder(r).Decode(&he); err != nil {
		t.Fatalf("decode Error: %v", err)
	}
	if he.Phase != "configure libkrun" || !strings.Contains(he.Err, "9 vCPUs: libkrun runs 1 to 8 here") {
		t.Errorf("Error = %+v, want phase configure libkrun and KVM's 8 vCPU limit", he)
	}
	if got := krundouble.Calls(t, log); len(got) != 1 || got[0] != "krun_get_max_vcpus" {
		t.Errorf("calls = %q, want only krun_get_max_vcpus, no context", got)
	}
}

// Without usable KVM the real libkrun panics inside krun_start_enter and
// takes the process down with no word (libkrun.CheckKVM). The helper, on the
// real library, must stop before that: one Error naming KVM, and
// 125, with this process still alive to report it.
func TestHelperRealLibkrunWithoutKVM(t *testing.T) {
	lib := testenv.RequireLibkrun(t)
	if libkrun.CheckKVM() == nil {
		testenv.Missing(t, "KVM runs guests here: this test is for hosts without it (CI's)")
	}
	dir := krunPlan(t, func(p *launch.Plan) {
		p.Library, p.Root, p.Disks, p.Shares, p.RAMMiB = lib, t.TempDir(), nil, nil, 256
	})
	// The helper confines itself before krun_start_enter: run it in a
	// child (sandbox_test.go), not in this test process.
	status, he := runKrunHelper(t, dir)
	if status != 125 {
		t.Errorf("Helper{real libkrun, no KVM}.Run() = %d, want 125", status)
	}
	if he.Phase != "krun_start_enter" || !strings.Contains(he.Err, "libkrun needs KVM") || !strings.Contains(he.Err, "--vmm qemu") {
		t.Errorf("Error = %+v, want phase krun_start_enter naming KVM and the fix", he)
	}
}

// A task with the workspace's keys gets the control channel: under libkrun
// the guest's vsock port contract.VsockControlPort, connected to the
// helper's socket (the guest connects; listen=0), on an explicit vsock
// device when the network is none.
func TestHelperKrunControlPort(t *testing.T) {
	dir := krunPlan(t, func(*launch.Plan) {})
	client, host := testKeys(t)
	if err := live.WriteKeys(dir, client, host); err != nil {
		t.Fatal(err)
	}
	log := krundouble.Record(t)
	h := &Helper{TaskDir: dir, DryRun: true, Log: slog.New(slog.DiscardHandler)}
	if status := h.Run(); status != 0 {
		t.Fatalf("Helper{krun, keys, DryRun}.Run() = %d, want 0", status)
	}
	krundouble.Compare(t, "Helper.Run()", krundouble.Calls(t, log), []string{
		`krun_get_max_vcpus`,
		`krun_set_log_level level=0`,
		`krun_create_ctx`,
		`krun_set_vm_config ctx=0 vcpus=2 ram_mib=1024`,
		`krun_set_root ctx=0 path="/s/tasks/t1/rootfs"`,
		`krun_add_disk ctx=0 block_id="loftd-nix" path="/s/w/nix.raw" read_only=0`,
		`krun_add_virtiofs ctx=0 tag="loftd-workspace" path="/home/u/proj"`,
		`krun_disable_implicit_vsock ctx=0`,
		`krun_add_vsock ctx=0 tsi_features=0`,
		`krun_add_vsock_port2 ctx=0 port=1025 path="` + dir + `/control-vsock.sock" listen=0`,
	})
}

// testKeys are a client private key (OpenSSH PEM) and a host public key
// (authorized_keys line), as the host writes them.
func testKeys(t *testing.T) (clientPEM, hostPub []byte) {
	t.Helper()
	_, c, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(c, "")
	if err != nil {
		t.Fatal(err)
	}
	hpub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := ssh.NewPublicKey(hpub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(blk), ssh.MarshalAuthorizedKey(hk)
}

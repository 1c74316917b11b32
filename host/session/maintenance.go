package session

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/rootfs/inroot"
)

// A maintenance VM is the static guest init alone, booted on a root loftd
// assembles itself in a task directory, with one workspace disk attached:
// the guest kernel, not the host's, touches the filesystem the guest wrote.
// It needs no image, so it works offline and before any image was pulled.

// maintenanceDirs are the mount points the init (or libkrun's init) mounts
// on before anything else exists in the root.
var maintenanceDirs = []string{"/proc", "/sys", "/dev", "/tmp", "/run"}

// Maintenance describes one maintenance VM.
type Maintenance struct {
	Guest     contract.Guest
	Disk      launch.Disk
	VMM       launch.VMM // --vmm / [vm] vmm
	GuestInit string     // --guest-init / [guest] init; "image" means the default
	Debug     bool
}

// RunMaintenance claims a task, writes the minimal root and the plan, and
// boots it through the helper as a session does. It returns the guest's
// status (0: the mode's work is done).
func RunMaintenance(e IO, st state.State, m Maintenance) (status int, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := watchSignals(cancel)
	defer sigs.stop()
	task, err := st.NewTask()
	if err != nil {
		return 0, err
	}
	defer task.Release()
	defer func() {
		if rerr := task.Remove(); rerr != nil {
			e.Log.Warn("clean up maintenance task", "dir", task.Dir, "err", rerr)
		}
	}()
	root := filepath.Join(task.Dir, "root")
	if err := writeMaintenanceRoot(root, m); err != nil {
		return 0, err
	}
	plan, err := maintenancePlan(task.Dir, root, st.Dir, m)
	if err != nil {
		return 0, err
	}
	if sig := sigs.caught(); sig != nil {
		return signalStatus(sig), nil
	}
	// The guest reads nothing: its stdin is /dev/null, not the user's.
	quiet := e
	quiet.Stdin = nil
	v := &supervisor{io: quiet, sigs: sigs, debug: m.Debug, taskDir: task.Dir, prof: newProfiler(false)}
	return v.boot(ctx, plan)
}

// writeMaintenanceRoot makes root: the empty mount points, the static
// guest init and /.krun_config.json running it in the maintenance mode.
func writeMaintenanceRoot(root string, m Maintenance) error {
	if err := os.Mkdir(root, 0o755); err != nil {
		return fmt.Errorf("maintenance root: %w", err)
	}
	for _, d := range maintenanceDirs {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("maintenance root: %w", err)
		}
	}
	spec := m.GuestInit
	if spec == "image" {
		spec = "" // there is no image: the one next to loftd
	}
	if err := injectGuestInit(root, spec); err != nil {
		return err
	}
	data, err := json.MarshalIndent(maintenanceConfig(m.Guest), "", "  ")
	if err != nil {
		return fmt.Errorf("maintenance guest config: %w", err)
	}
	if err := inroot.WriteFile(root, contract.KrunConfigPath, bytes.NewReader(append(data, '\n')), 0o644); err != nil {
		return fmt.Errorf("maintenance guest config: %w", err)
	}
	return nil
}

// maintenanceConfig runs the init's usual entry; LOFTD_MODE picks the work.
func maintenanceConfig(g contract.Guest) contract.KrunConfig {
	return contract.KrunConfig{Cmd: []string{contract.GuestInitPath, "enter"}, Env: g.Env(), WorkingDir: "/"}
}

// maintenanceRAMMiB is enough for the kernel and the init; the VM does
// nothing else.
const maintenanceRAMMiB = 256

func maintenancePlan(taskDir, root, stateDir string, m Maintenance) (*launch.Plan, error) {
	vmm, _, err := pickVMM(m.VMM)
	if err != nil {
		return nil, err
	}
	kc := maintenanceConfig(m.Guest)
	p := &launch.Plan{
		Version: launch.Version, VMM: vmm.name, Library: vmm.library, KrunfwLibrary: vmm.krunfw,
		QEMU: vmm.qemu, Virtiofsd: vmm.virtiofsd, VirtiofsdFlavor: vmm.virtiofsdFlavor,
		VCPUs: 1, RAMMiB: maintenanceRAMMiB, Root: root,
		Disks:    []launch.Disk{m.Disk},
		Network:  launch.Network{Mode: launch.NetworkNone},
		ExecPath: contract.GuestInitPath, Argv: kc.Cmd[1:], Env: kc.Env, Workdir: kc.WorkingDir,
		CacheDir: state.State{Dir: stateDir}.Kernels(),
	}
	if err := launch.Write(taskDir, p); err != nil {
		return nil, err
	}
	return p, nil
}

package vmm

import (
	"fmt"
	"github.com/loftd/loftd/launch"

	"github.com/loftd/loftd/krun"
)

// KrunVM converts a plan into the krun binding's pure configuration.
func KrunVM(p *launch.Plan) (krun.VM, error) {
	if p.VCPUs > 255 {
		return krun.VM{}, fmt.Errorf("launch plan: %d vCPUs exceed libkrun's limit of 255", p.VCPUs)
	}
	vm := krun.VM{
		LogLevel: krun.LogOff, VCPUs: uint8(p.VCPUs), RAMMiB: uint32(p.RAMMiB),
		NestedVirt: p.NestedVirt, Root: p.Root, PortMap: p.Network.PortMap,
		Rlimits: p.Rlimits, Workdir: p.Workdir, ExecPath: p.ExecPath, Argv: p.Argv, Env: p.Env,
	}
	for _, d := range p.Disks {
		vm.Disks = append(vm.Disks, krun.Disk{ID: d.ID, Path: d.Path, ReadOnly: d.ReadOnly})
	}
	for _, s := range p.Shares {
		vm.Shares = append(vm.Shares, krun.Share{Tag: s.Tag, Path: s.Path})
	}
	return vm, nil
}

// runKrun configures libkrun and hands the process over to the VM:
// krun_start_enter returns only on failure, and on success exits this
// process with the guest's status.
func (h *Helper) runKrun(p *launch.Plan) int {
	lib, err := krun.Open(p.Library)
	if err != nil {
		return h.fail("load libkrun", err)
	}
	vm, err := KrunVM(p)
	if err != nil {
		return h.fail("configure libkrun", err)
	}
	ctx, err := lib.Configure(vm)
	if err != nil {
		return h.fail("configure libkrun", err)
	}
	if h.DryRun {
		return 0
	}
	h.Log.Debug("krun_start_enter", "root", p.Root, "vcpus", p.VCPUs, "ram_mib", p.RAMMiB)
	return h.fail("krun_start_enter", lib.StartEnter(ctx))
}

package vmm

import (
	"github.com/loftd/loftd/krun"
	"github.com/loftd/loftd/launch"
	krunvmm "github.com/loftd/loftd/vmm/krun"
)

// runKrun configures libkrun from the plan (vmm/krun does the conversion)
// and hands the process over to the VM: krun_start_enter returns only on
// failure, and on success exits this process with the guest's status.
func (h *Helper) runKrun(p *launch.Plan) int {
	lib, err := krun.Open(p.Library)
	if err != nil {
		return h.fail("load libkrun", err)
	}
	ctx, err := krunvmm.Configure(lib, p)
	if err != nil {
		return h.fail("configure libkrun", err)
	}
	if h.DryRun {
		return 0
	}
	h.Log.Debug("krun_start_enter", "root", p.Root, "vcpus", p.VCPUs, "ram_mib", p.RAMMiB)
	return h.fail("krun_start_enter", lib.StartEnter(ctx))
}

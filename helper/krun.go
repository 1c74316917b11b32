package helper

import (
	"os"
	"syscall"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/helper/krun"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/libkrun"
)

// runKrun configures libkrun from the plan (helper/krun does the conversion)
// and hands the process over to the VM: krun_start_enter returns only on
// failure, and on success exits this process with the guest's status.
func (h *Helper) runKrun(p *launch.Plan) int {
	lib, err := libkrun.Open(p.Library)
	if err != nil {
		return h.fail("load libkrun", err)
	}
	netFD := -1
	if !h.DryRun {
		// passt lives as long as the VM's end of its socket: this
		// process is the VM, and krun_start_enter never returns on
		// success, so passt ends when this process exits (the socket
		// closes), however it exits.
		proc, vmEnd, err := h.startNet(p)
		if err != nil {
			return h.fail("start network", err)
		}
		defer h.stopNet(proc) // only reached when the VM failed to start
		if vmEnd != nil {
			defer vmEnd.Close()
			netFD = int(vmEnd.Fd())
		}
	} else if p.Network.Mode == launch.NetworkPasst && p.Network.Passt != nil || p.Network.Mode == launch.NetworkEgress {
		netFD = 1 << 20 // a placeholder: a dry run configures but never boots
	}
	// The control channel is configured in a dry run too: it is part
	// of what libkrun is told.
	mux, keys, err := h.startLive()
	if err != nil {
		return h.fail("control channel", err)
	}
	if mux != nil {
		defer mux.Close() // only reached when the VM did not start
		// This process becomes the VM: kill ends it.
		mux.OnKill = func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
		path, err := mux.ListenVsock(keys)
		if err != nil {
			return h.fail("control channel", err)
		}
		p.VsockPorts = append(p.VsockPorts, launch.VsockPort{Port: contract.VsockControlPort, Path: path})
	}
	ctx, err := krun.ConfigureNet(lib, p, netFD)
	if err != nil {
		return h.fail("configure libkrun", err)
	}
	if h.DryRun {
		return 0
	}
	// The helper becomes the VMM: confine it before the guest runs (and
	// before CheckKVM, which then runs as the VMM will).
	if err := h.confine(p, nil); err != nil {
		return h.fail("confine helper", err)
	}
	// Without KVM libkrun panics inside krun_start_enter: say so first.
	if err := libkrun.CheckKVM(); err != nil {
		return h.fail("krun_start_enter", err)
	}
	h.Log.Debug("krun_start_enter", "root", p.Root, "vcpus", p.VCPUs, "ram_mib", p.RAMMiB)
	return h.fail("krun_start_enter", lib.StartEnter(ctx))
}

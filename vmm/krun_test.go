package vmm

import (
	"reflect"
	"testing"

	"github.com/loftd/loftd/launch"
)

func fullPlan() *launch.Plan {
	return &launch.Plan{
		Version: launch.Version, VMM: "qemu", Library: "/usr/lib64/libkrun.so.1", KrunfwLibrary: "/usr/lib64/libkrunfw.so.5",
		VCPUs: 4, RAMMiB: 8192, Root: "/s/tasks/t1/rootfs",
		Disks:      []launch.Disk{{ID: "loftd-nix", Path: "/s/w/nix.raw"}, {ID: "loftd-containers", Path: "/s/w/containers.raw", ReadOnly: true}},
		Shares:     []launch.Share{{Tag: "loftd-workspace", Path: "/home/u/proj"}},
		Network:    launch.Network{Mode: "passt", PortMap: []string{"8080:80"}},
		Console:    launch.Console{Interactive: true},
		NestedVirt: true, Rlimits: []string{"7=1024:4096"},
		ExecPath: "/.loftd/guest-init", Argv: []string{"enter", "--", "make", "test"},
		Env: []string{"LOFTD_MODE=enter"}, Workdir: "/workspace", StateDir: "/s",
	}
}

func TestKrunVMCarriesEveryField(t *testing.T) {
	p := fullPlan()
	vm, err := KrunVM(p)
	if err != nil {
		t.Fatal(err)
	}
	if int(vm.VCPUs) != p.VCPUs || int(vm.RAMMiB) != p.RAMMiB || vm.Root != p.Root || !vm.NestedVirt ||
		vm.ExecPath != p.ExecPath || !reflect.DeepEqual(vm.Argv, p.Argv) || !reflect.DeepEqual(vm.Env, p.Env) ||
		vm.Workdir != p.Workdir || !reflect.DeepEqual(vm.Rlimits, p.Rlimits) || !reflect.DeepEqual(vm.PortMap, p.Network.PortMap) ||
		len(vm.Disks) != 2 || vm.Disks[1].ID != "loftd-containers" || !vm.Disks[1].ReadOnly ||
		len(vm.Shares) != 1 || vm.Shares[0].Tag != "loftd-workspace" {
		t.Errorf("KrunVM(plan) = %+v, lost a field of %+v", vm, p)
	}
	p.VCPUs = 300
	if _, err := KrunVM(p); err == nil {
		t.Errorf("KrunVM(300 vCPUs) succeeded, want an error")
	}
}

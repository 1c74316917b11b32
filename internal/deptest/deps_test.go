// Package deptest checks the import rules of DESIGN.md with `go list`:
// the guest init stays small and static, purego stays in krun/..., and
// krun, rootfs and disks never import host.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/loftd/loftd"

// goList returns, for each package matched by pattern, its direct imports.
func goList(t *testing.T, args ...string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-tags", "containers_image_openpgp", "-f", "{{.ImportPath}} {{join .Imports \" \"}}"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	pkgs := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkgs[fields[0]] = fields[1:]
	}
	return pkgs
}

func TestGuestInitLinksNoHostSide(t *testing.T) {
	forbidden := []string{"github.com/containers/", "github.com/ebitengine/purego", module + "/host", module + "/krun", module + "/rootfs"}
	deps := goList(t, "-deps", "./cmd/loftd-guest-init")
	if _, ok := deps[module+"/guestinit"]; !ok {
		t.Fatalf("go list -deps ./cmd/loftd-guest-init does not list guestinit: the test would prove nothing")
	}
	for pkg := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("cmd/loftd-guest-init links %s (forbidden: %s); the guest init must stay small and static", pkg, f)
			}
		}
	}
}

func TestImportRules(t *testing.T) {
	pkgs := goList(t, "./...")
	rules := []struct {
		from, to, why string
	}{
		{"", "github.com/ebitengine/purego", "purego belongs to krun/... only"},
		{module + "/krun", module + "/host", "krun never imports host"},
		{module + "/krun", module + "/vmm", "krun is the pure libkrun binding: the backends import it, not the reverse"},
		{module + "/krun", module + "/launch", "krun is the pure libkrun binding: it knows no launch plan"},
		{module + "/launch", module + "/host", "the launch plan is pure data below host"},
		{module + "/launch", module + "/vmm", "the launch plan is the model the backends read, not the reverse"},
		{module + "/launch", module + "/krun", "the launch plan is pure data: the libkrun backend (vmm/krun) converts it"},
		{module + "/vmm", module + "/host", "the backends never import host"},
		{module + "/rootfs", module + "/host", "rootfs never imports host"},
		{module + "/disks", module + "/host", "disks never imports host"},
		{module + "/guestinit", module + "/host", "guestinit never imports host"},
	}
	checked := 0
	for pkg, imports := range pkgs {
		for _, r := range rules {
			if !strings.HasPrefix(pkg, r.from) || (r.to == "github.com/ebitengine/purego" && strings.HasPrefix(pkg, module+"/krun")) {
				continue
			}
			checked++
			for _, imp := range imports {
				if strings.HasPrefix(imp, r.to) {
					t.Errorf("%s imports %s: %s", pkg, imp, r.why)
				}
			}
		}
	}
	if checked < 10 {
		t.Errorf("only %d package/rule pairs checked: go list found too little", checked)
	}
	for pkg, imports := range pkgs {
		if strings.HasPrefix(pkg, module+"/guestinit") {
			for _, imp := range imports {
				if strings.HasPrefix(imp, module) && imp != module+"/guestinit/contract" && imp != module+"/disks" && !strings.HasPrefix(imp, module+"/guestinit") {
					t.Errorf("%s imports %s: the guest init may import only guestinit/contract and disks of loftd", pkg, imp)
				}
			}
		}
		if strings.HasPrefix(pkg, module+"/guestinit") || pkg == module+"/cmd/loftd-guest-init" {
			continue
		}
		for _, imp := range imports {
			if imp == module+"/guestinit" {
				t.Errorf("%s imports guestinit: only guestinit/contract is shared with the host", pkg)
			}
		}
	}
}

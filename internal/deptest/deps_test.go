// Package deptest checks the import rules of docs/architecture.md with
// `go list`, in one place: the guest init stays small and static, purego
// stays in krun/..., the launch plan and the libkrun binding stay pure, and
// nothing below host imports it.
package deptest

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

const module = "github.com/loftd/loftd"

// goList returns, for each package matched by args, its imports: direct
// ones, or with -deps every package it links.
func goList(t *testing.T, args ...string) map[string][]string {
	t.Helper()
	return goListEnv(t, nil, args...)
}

// goListEnv is goList with extra environment (CGO_ENABLED=0 for what is
// built without cgo: there package net links no runtime/cgo).
func goListEnv(t *testing.T, env []string, args ...string) map[string][]string {
	t.Helper()
	goBin := testenv.RequireCommand(t, "go", "golang-go")
	cmd := exec.Command(goBin, append([]string{"list", "-tags", "containers_image_openpgp"}, args...)...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	pkgs := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 0 {
			pkgs[fields[0]] = fields[1:]
		}
	}
	return pkgs
}

// deps lists every package pkg links (go list -deps), built with env.
func deps(t *testing.T, env []string, pkg string) []string {
	t.Helper()
	var out []string
	for p := range goListEnv(t, env, "-deps", "-f", "{{.ImportPath}}", pkg) {
		out = append(out, p)
	}
	if len(out) < 2 {
		t.Fatalf("go list -deps %s listed %d packages: the test would prove nothing", pkg, len(out))
	}
	return out
}

// hasPrefix: pkg is prefix or below it; a prefix ending in "/" matches any
// package path that starts with it (a whole organisation).
func hasPrefix(pkg, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(pkg, prefix)
	}
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

// TestLinkRules checks what each package links, transitively.
func TestLinkRules(t *testing.T) {
	heavy := []string{"github.com/containers/", "go.podman.io/", "github.com/ebitengine/purego"}
	// The guest init and what it links are built with CGO_ENABLED=0
	// (Makefile, flake): list them that way, or package net (netlink's)
	// would pull in runtime/cgo that the real build never links.
	noCgo := []string{"CGO_ENABLED=0"}
	rules := []struct {
		pkg       string
		env       []string
		forbidden []string
		why       string
	}{
		{"./cmd/loftd-guest-init", noCgo, append([]string{module + "/host", module + "/krun", module + "/rootfs", module + "/vmm", module + "/launch", "runtime/cgo"}, heavy...),
			"the guest init must stay small and static (CGO_ENABLED=0)"},
		{"./disks", nil, append([]string{module + "/host", module + "/rootfs", module + "/krun", module + "/vmm", module + "/guestinit", "runtime/cgo"}, heavy...),
			"the guest init links disks"},
		{"./rootfs", nil, []string{module + "/host", module + "/krun", module + "/vmm", module + "/disks", module + "/guestinit"},
			"rootfs sits below host and knows no VM"},
		{"./krun", nil, append([]string{module + "/host", module + "/vmm", module + "/launch", module + "/rootfs", module + "/disks"}, heavy[:2]...),
			"krun is the pure libkrun binding"},
		{"./launch", nil, append([]string{module + "/host", module + "/vmm", module + "/krun", module + "/rootfs"}, heavy...),
			"the launch plan is pure data, the one VM model the backends read"},
		{"./vmm/...", nil, []string{module + "/host", module + "/rootfs"},
			"the backends never import host"},
	}
	for _, r := range rules {
		for _, dep := range deps(t, r.env, r.pkg) {
			for _, f := range r.forbidden {
				if hasPrefix(dep, f) {
					t.Errorf("%s links %s: %s", r.pkg, dep, r.why)
				}
			}
		}
	}
}

// TestImportRules checks direct imports across the whole module.
func TestImportRules(t *testing.T) {
	pkgs := goList(t, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	if len(pkgs) < 10 {
		t.Fatalf("go list ./... found %d packages: the test would prove nothing", len(pkgs))
	}
	for pkg, imports := range pkgs {
		for _, imp := range imports {
			if imp == "github.com/ebitengine/purego" && !hasPrefix(pkg, module+"/krun") {
				t.Errorf("%s imports purego: it belongs to krun/... only", pkg)
			}
			if hasPrefix(imp, module+"/host") && !hasPrefix(pkg, module+"/host") && !hasPrefix(pkg, module+"/cmd") && !hasPrefix(pkg, module+"/internal") {
				t.Errorf("%s imports %s: imports point down, nothing below host imports it", pkg, imp)
			}
			if imp == module+"/guestinit" && !hasPrefix(pkg, module+"/guestinit") && pkg != module+"/cmd/loftd-guest-init" {
				t.Errorf("%s imports guestinit: only guestinit/contract is shared with the host", pkg)
			}
			if hasPrefix(pkg, module+"/guestinit") && hasPrefix(imp, module) &&
				!hasPrefix(imp, module+"/guestinit") && !hasPrefix(imp, module+"/disks") {
				t.Errorf("%s imports %s: the guest init may import only guestinit/... and disks of loftd", pkg, imp)
			}
		}
	}
}

// Package deptest checks the import rules of docs/architecture.md with
// `go list`, in one place: the guest init stays small and static, purego
// stays in libkrun/..., the launch plan and the libkrun binding stay pure,
// nothing below host imports it, and the session engine (host/session)
// never imports the command line (host).
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

// goListEnv is goList with extra environment (CGO_ENABLED=0 for the guest
// init, which is built that way: with cgo on, package net alone would
// link runtime/cgo into a list that does not describe the real binary).
func goListEnv(t *testing.T, env []string, args ...string) map[string][]string {
	t.Helper()
	goBin := testenv.RequireCommand(t, "go", "golang-go")
	cmd := exec.Command(goBin, append([]string{"list", "-tags", "containers_image_openpgp"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = "../.."
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
// package path that starts with it (a whole organisation), and one ending
// in "$" only that package (host$ is the command line, not host/session).
func hasPrefix(pkg, prefix string) bool {
	if exact, ok := strings.CutSuffix(prefix, "$"); ok {
		return pkg == exact
	}
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(pkg, prefix)
	}
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

// noCgo is the guest init's build environment (Makefile, nix/guest-init.nix).
var noCgo = []string{"CGO_ENABLED=0"}

// TestLinkRules checks what each package links, transitively.
func TestLinkRules(t *testing.T) {
	heavy := []string{"github.com/containers/", "go.podman.io/", "github.com/ebitengine/purego"}
	rules := []struct {
		pkg       string
		env       []string // the build's environment (the guest init's is CGO_ENABLED=0)
		forbidden []string
		why       string
	}{
		{"./cmd/loftd-guest-init", noCgo, append([]string{module + "/host", module + "/libkrun", module + "/rootfs", module + "/helper", module + "/launch", "runtime/cgo"}, heavy...),
			"the guest init must stay small and static (CGO_ENABLED=0)"},
		{"./guestinit/sshd", noCgo, append([]string{module + "/host", module + "/libkrun", module + "/rootfs", module + "/helper", module + "/launch", module + "/disks", "runtime/cgo"}, heavy...),
			"the guest's SSH server is the guest init's: static, and it knows no host package"},
		{"./disks", nil, append([]string{module + "/host", module + "/rootfs", module + "/libkrun", module + "/helper", module + "/guestinit", "runtime/cgo"}, heavy...),
			"the guest init links disks"},
		{"./rootfs", nil, []string{module + "/host", module + "/libkrun", module + "/helper", module + "/disks", module + "/guestinit"},
			"rootfs sits below host and knows no VM"},
		{"./libkrun", nil, append([]string{module + "/host", module + "/helper", module + "/launch", module + "/rootfs", module + "/disks"}, heavy[:2]...),
			"libkrun is the pure libkrun binding"},
		{"./launch", nil, append([]string{module + "/host", module + "/helper", module + "/libkrun", module + "/rootfs"}, heavy...),
			"the launch plan is pure data, the one VM model the backends read"},
		{"./host/session", nil, []string{module + "/host$"},
			"the session engine never links the command line (host): it gets a session.IO"},
		{"./host/state", nil, []string{module + "/host$", module + "/host/session"},
			"the on-disk state knows no CLI and no flow"},
		{"./helper/...", nil, []string{module + "/host", module + "/rootfs"},
			"the helper and its backends never import host"},
		{"./review", nil, append([]string{module + "/host", module + "/helper", module + "/libkrun", module + "/launch", module + "/rootfs", module + "/disks", module + "/guestinit", "runtime/cgo"}, heavy...),
			"review reads a layer and writes a workspace: no session, state, VM or image store"},
		{"./egress/mitm", nil, append([]string{module + "/host", module + "/helper", module + "/launch", module + "/rootfs", module + "/egress/netstack", "gvisor.dev/"}, heavy...),
			"the TLS interception knows no network stack and no launch plan: the netstack hands it connections"},
		{"./contract", nil, append([]string{module + "/host", module + "/helper", module + "/libkrun", module + "/launch", module + "/rootfs", module + "/guestinit", "runtime/cgo"}, heavy...),
			"the host↔guest contract is linked by the guest init and imports nothing above it"},
		{"./egress", nil, []string{module + "/host", module + "/helper", module + "/launch", "gvisor.dev/", "github.com/miekg/dns", "github.com/containers/"},
			"the egress policy is pure: both the network stack and the TLS interceptor import it"},
		{"./egress/...", nil, []string{module + "/host", module + "/helper", module + "/launch", module + "/rootfs"},
			"the policy network knows no CLI, helper or plan"},
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
			if imp == "github.com/ebitengine/purego" && !hasPrefix(pkg, module+"/libkrun") {
				t.Errorf("%s imports purego: it belongs to libkrun/... only", pkg)
			}
			if hasPrefix(imp, module+"/host") && !hasPrefix(pkg, module+"/host") && !hasPrefix(pkg, module+"/cmd") && !hasPrefix(pkg, module+"/internal") {
				t.Errorf("%s imports %s: imports point down, nothing below host imports it", pkg, imp)
			}
			if imp == module+"/host" && !hasPrefix(pkg, module+"/cmd") {
				t.Errorf("%s imports %s: the command line is the mains' only; the engine is host/session", pkg, imp)
			}
			if hasPrefix(imp, module+"/guestinit") && !hasPrefix(pkg, module+"/guestinit") && pkg != module+"/cmd/loftd-guest-init" {
				t.Errorf("%s imports %s: the guest init is the guest's; the host shares only contract with it", pkg, imp)
			}
			if pkg == module+"/internal/confine" && hasPrefix(imp, module) {
				t.Errorf("%s imports %s: confinement is data and mechanism only; it imports nothing of loftd", pkg, imp)
			}
			if hasPrefix(pkg, module+"/guestinit") && hasPrefix(imp, module) &&
				!hasPrefix(imp, module+"/guestinit") && !hasPrefix(imp, module+"/contract") && !hasPrefix(imp, module+"/disks") {
				t.Errorf("%s imports %s: the guest init may import only guestinit/..., contract and disks of loftd", pkg, imp)
			}
		}
	}
}

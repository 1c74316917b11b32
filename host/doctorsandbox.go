package host

import (
	"fmt"
	"strings"

	"github.com/loftd/loftd/helper/qemu"
	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/internal/confine"
)

// checkSandbox reports the VMM confinement a session would get here: the
// mode (config), the kernel's Landlock ABI and seccomp, and what each
// process runs under.
func checkSandbox(cfg *session.Config) check {
	c := check{name: "vmm sandbox", level: "ok"}
	mode, err := confine.ParseMode(cfg.VM.Sandbox)
	if err != nil {
		c.level, c.detail, c.fix = "fail", err.Error(), "set [vm] sandbox to enforce, audit or off"
		return c
	}
	abi, sec := confine.LandlockABI(), confine.SeccompSupported()
	return sandboxCheck(mode, abi, sec)
}

// sandboxCheck is checkSandbox for the given facts (testable).
func sandboxCheck(mode confine.Mode, abi int, seccomp bool) check {
	c := check{name: "vmm sandbox", level: "ok"}
	ll := fmt.Sprintf("landlock ABI %d", abi)
	if abi == 0 {
		ll = "no landlock"
	}
	sc := "seccomp filters"
	if !seccomp {
		sc = "no seccomp"
	}
	parts := []string{"mode " + mode.String(), ll, sc}
	procs := qemu.Confinement(mode)
	helperConf := "none"
	switch mode {
	case confine.Enforce:
		helperConf = "landlock, seccomp allow-list, no_new_privs"
	case confine.Audit:
		helperConf = "seccomp allow-list logging (SECCOMP_RET_LOG), no_new_privs"
	}
	parts = append(parts, "helper: "+helperConf)
	for _, k := range []string{"qemu", "virtiofsd root", "virtiofsd share"} {
		parts = append(parts, k+": "+procs[k])
	}
	parts = append(parts, "passt: its own (namespaces, seccomp, capabilities dropped)")
	c.detail = strings.Join(parts, "; ")
	switch {
	case mode == confine.Enforce && !seccomp:
		c.level, c.fix = "fail", "this kernel lacks seccomp filters: sessions refuse to boot; run with --vmm-sandbox=off"
	case mode == confine.Off:
		c.level, c.fix = "warn", "a guest that escapes the VMM holds all it holds: set [vm] sandbox = \"enforce\" (the default)"
	case mode == confine.Audit:
		c.level, c.fix = "warn", "audit denies nothing: set [vm] sandbox = \"enforce\" once `loftd internal seccomp-audit` lists no call"
	case abi == 0:
		c.level, c.fix = "warn", "no Landlock here (kernel 5.13+ with lsm=landlock): the VMM's files are not restricted"
	}
	return c
}

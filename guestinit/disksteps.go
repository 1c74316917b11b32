package guestinit

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/loftd/loftd/contract"
)

// diskSteps prepare the workspace's persistent disks (DESIGN.md "Guest
// steps" 4–5): /nix, then the containers disk and rootless Podman, then
// sysbox when the image ships it. The directories and files they make
// belong to the contract's user (User, UID, GID), who runs the workload
// once privileges are dropped.
func (e *enter) diskSteps() []Step {
	g := e.guest
	var labels []string
	if g.NixDisk != "" {
		labels = append(labels, contract.NixLabel)
	}
	if g.ContainersDisk != "" {
		labels = append(labels, contract.ContainersLabel)
	}
	if len(labels) == 0 {
		return nil
	}
	d := &diskPrep{e: e, user: g.User, uid: g.UID, gid: g.GID}
	d.home = d.homeDir()
	steps := []Step{{Desc: "find disks by btrfs label " + strings.Join(labels, " "), Do: func() error {
		found, warn, err := findDisks(e.sys.SysRoot, labels, byLabelThenOrder)
		for _, w := range warn {
			fmt.Fprintf(e.errw(), "guest-init: %s\n", w)
		}
		d.disks = found
		return err
	}}}
	if g.NixDisk != "" {
		steps = append(steps, d.nixSteps()...)
	}
	if g.ContainersDisk != "" {
		steps = append(steps, d.containerSteps()...)
		steps = append(steps, d.sysboxSteps()...)
	}
	return steps
}

// homeDir is the user's home as the user step (user.go) settles it: the
// image's entry with the user's uid (reused as it is), else its entry of
// that name (renumbered), else /home/USER.
func (d *diskPrep) homeDir() string {
	data, _ := os.ReadFile(d.path("/etc/passwd"))
	byName := ""
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 6 || !strings.HasPrefix(f[5], "/") {
			continue
		}
		if f[2] == strconv.Itoa(d.uid) {
			return f[5]
		}
		if f[0] == d.user && byName == "" {
			byName = f[5]
		}
	}
	if byName != "" {
		return byName
	}
	if d.user == "root" {
		return "/root"
	}
	return "/home/" + d.user
}

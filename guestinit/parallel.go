package guestinit

import (
	"errors"
	"strings"
	"sync"
)

// parallelSteps runs groups at once, each group's steps in order, and
// returns when all are done. Under TCG the guest's vCPUs share one host
// thread, so what overlaps is only what waits on the host: the btrfs
// mounts read their disks in QEMU's I/O threads, the virtiofs writes wait
// for virtiofsd. Groups must touch disjoint paths and state (the nix disk
// and /nix; the containers disk, Podman's config and /etc/sub[ug]id).
// Empty groups are dropped; a single group is returned as its own steps,
// so a plan without two independent groups reads as before. Each inner
// step is profiled on its own line, and the whole as one more step.
func (e *enter) parallelSteps(groups ...[]Step) []Step {
	var live [][]Step
	for _, g := range groups {
		if len(g) > 0 {
			live = append(live, g)
		}
	}
	switch len(live) {
	case 0:
		return nil
	case 1:
		return live[0]
	}
	descs := make([]string, len(live))
	for i, g := range live {
		names := make([]string, len(g))
		for j, s := range g {
			names[j] = s.Desc
		}
		descs[i] = "(" + strings.Join(names, "; ") + ")"
	}
	return []Step{{
		Desc:   "in parallel: " + strings.Join(descs, " & "),
		Groups: live,
		Do: func() error {
			errs := make([]error, len(live))
			var wg sync.WaitGroup
			for i, g := range live {
				wg.Go(func() { errs[i] = e.runSteps(g) })
			}
			wg.Wait()
			return errors.Join(errs...)
		},
	}}
}

// leaves is the step list with each parallel step replaced by its groups'
// steps, group after group: the steps a plan runs, for tests to compare.
func leaves(steps []Step) []string {
	var out []string
	for _, s := range steps {
		if s.Groups == nil {
			out = append(out, s.Desc)
			continue
		}
		for _, g := range s.Groups {
			out = append(out, leaves(g)...)
		}
	}
	return out
}

package session

import (
	"fmt"
	"os"

	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/internal/parts"
	"github.com/loftd/loftd/rootfs"
)

// EnterUserNamespace re-runs loftd inside the user's keep-id namespace when
// it is not real root (DESIGN.md "Identity and user namespaces"): image
// ingestion, the task root and the helper all run there, so image files
// owned by root stay root in the guest and /workspace stays the user's. It
// returns in the child, after checking its maps (or at once as real root);
// the parent exits with the
// child's status. The state directories are made first, as the user:
// made inside, they would belong to the namespace's root.
func EnterUserNamespace(e IO, cfg *Config) error {
	if os.Geteuid() == 0 && !rootfs.InKeepID() {
		return nil
	}
	dir, err := StateDir(cfg, e.Getenv)
	if err != nil {
		return err
	}
	// Inside the namespace /proc/self/exe reads as "/" (measured), so the
	// child learns where loftd and the guest init next to it live from here.
	exe, err := executable()
	if err != nil {
		return fmt.Errorf("rootless: %w", err)
	}
	os.Setenv(exeEnv, exe)
	st := state.State{Dir: dir}
	dirs := []string{st.Dir, st.Images(), st.Tasks(), st.Workspaces(), st.Kernels(), st.Reviews(), runRoot(e.Getenv)}
	if _, err := rootfs.EnterKeepID(rootfs.EnterOptions{Dirs: dirs, Log: e.Log}); err != nil {
		return fmt.Errorf("rootless: %w", err)
	}
	return nil
}

// exeEnv carries loftd's own path into the keep-id namespace.
const exeEnv = parts.ExeEnv

// executable is loftd's own path, for the helper's re-exec and for finding
// the guest init beside it.
func executable() (string, error) { return parts.Executable() }

// StateInNamespace loads the config, enters the keep-id namespace (the
// store and task directories belong to its ids) and opens the state
// directory: the common start of gc, images and ps.
func StateInNamespace(e IO) (*Config, state.State, error) {
	cfg, err := ReadConfig(e)
	if err != nil {
		return nil, state.State{}, err
	}
	if err := EnterUserNamespace(e, cfg); err != nil {
		return nil, state.State{}, err
	}
	st, err := OpenState(e, cfg)
	return cfg, st, err
}

// ownByUser gives a file made inside the keep-id namespace to the real
// user, so the workspace's disks stay theirs on the host. Outside a
// namespace it does nothing: files are already the caller's.
func ownByUser(paths ...string) error {
	uid, gid, inside := rootfs.KeepIDUser()
	if !inside {
		return nil
	}
	for _, p := range paths {
		if err := os.Lchown(p, int(uid), int(gid)); err != nil {
			return fmt.Errorf("give %s to uid %d: %w", p, uid, err)
		}
	}
	return nil
}

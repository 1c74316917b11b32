package imagebuild

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/containers/buildah"
	"golang.org/x/sys/unix"

	"github.com/loftd/loftd/rootfs"
)

// buildLockName is the file under the store's root that every build and
// import holds shared (flock) while its working containers exist. A
// cleaner takes it exclusive without waiting: when it gets it, no build is
// alive (a killed one's lock went with its process), so every working
// container in the store is debris; when it does not, it leaves them all,
// since it cannot tell a live build's containers from a dead one's.
const buildLockName = "loftd-build.lock"

// tmpPrefix names the directories Build makes under the store's tmp for
// an in-memory recipe; a killed build leaves its own behind.
const tmpPrefix = "build-"

// Stale is what CleanStale found.
type Stale struct {
	// Removed are the IDs of the working containers removed (each with
	// its mount).
	Removed []string
	// Busy: a build or import is running, so nothing was removed.
	Busy bool
}

// CleanStale removes what killed builds and imports left in store — their
// working containers, the overlay mounts under them, their temporary
// recipe directories — unless a build is running. `loftd gc` calls it;
// every build and import does the same first. log may be nil.
func CleanStale(store *rootfs.Store, log *slog.Logger) (Stale, error) {
	f, excl, err := openBuildLock(store, unix.LOCK_EX|unix.LOCK_NB)
	if err != nil {
		return Stale{}, err
	}
	defer f.Close()
	if !excl {
		return Stale{Busy: true}, nil
	}
	removed, err := removeWorkingContainers(store, log)
	return Stale{Removed: removed}, err
}

// holdBuild is the start of every build and import: it clears what dead
// builds left (when none is alive) and returns the shared lock that marks
// this one alive until the returned file is closed (or the process dies).
func holdBuild(store *rootfs.Store, log *slog.Logger) (*os.File, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f, excl, err := openBuildLock(store, unix.LOCK_EX|unix.LOCK_NB)
	if err != nil {
		return nil, err
	}
	if excl {
		if removed, err := removeWorkingContainers(store, log); err != nil {
			log.Warn("could not remove what a killed build left", "err", err)
		} else if len(removed) > 0 {
			log.Info("removed working containers a killed build left", "ids", removed)
		}
	}
	// From exclusive (or nothing) to shared. flock converts by dropping
	// and retaking, so another cleaner may slip in between: harmless, as
	// this build has made nothing yet.
	if err := flock(f, unix.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("build lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// openBuildLock opens the lock file and tries how on it; excl reports
// whether an exclusive lock was taken.
func openBuildLock(store *rootfs.Store, how int) (f *os.File, excl bool, err error) {
	name := filepath.Join(store.Root(), buildLockName)
	f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("build lock: %w", err)
	}
	err = flock(f, how)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return f, false, nil
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("build lock %s: %w", name, err)
	}
	return f, how&unix.LOCK_EX != 0, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// removeWorkingContainers deletes every Buildah working container in the
// store (deleting one unmounts its layer) and the recipe directories of
// in-memory builds. The caller holds the build lock exclusively. Only
// containers with Buildah's state are touched: task roots are not
// containers, and nothing else in loftd makes any.
func removeWorkingContainers(store *rootfs.Store, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	builders, err := buildah.OpenAllBuilders(store.Containers())
	if err != nil {
		return nil, fmt.Errorf("list working containers: %w", err)
	}
	var removed []string
	var errs []error
	for _, b := range builders {
		id := b.ContainerID
		log.Debug("removing a dead build's working container", "id", id, "name", b.Container, "from", b.FromImage)
		if err := b.Delete(); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, id)
	}
	tmp := store.SystemContext().BigFilesTemporaryDir
	dirs, _ := filepath.Glob(filepath.Join(tmp, tmpPrefix+"*"))
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	return removed, errors.Join(errs...)
}

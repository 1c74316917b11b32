package rootfs

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/containers/storage"
	"golang.org/x/sys/unix"
)

// defaultPolicy accepts any image: loftd runs what the user names, like
// `podman run` with Debian's default policy. Written to Root/policy.json the
// first time, so a user can tighten it there.
//
//go:embed policy.json
var defaultPolicy []byte

// Storage drivers, as containers/storage names them.
const (
	DriverAuto    = "auto"
	DriverBtrfs   = "btrfs"
	DriverOverlay = "overlay"
	DriverVFS     = "vfs"
)

// Options configure Open.
type Options struct {
	// Root is the containers/storage graph root and the cache metadata
	// directory (STATE/images).
	Root string
	// RunRoot holds run-time state (locks, mount counts); default Root/run.
	// Rootless, it must be a directory the user owns.
	RunRoot string
	// Driver is "auto" (default), "btrfs", "overlay" or "vfs".
	Driver string
	// SignaturePolicyPath overrides Root/policy.json.
	SignaturePolicyPath string
	// AuthFile is the registry credentials file (containers-auth.json(5),
	// also a Kubernetes pull secret's .dockerconfigjson); "" leaves
	// containers/image's defaults ($XDG_RUNTIME_DIR/containers/auth.json,
	// ~/.docker/config.json).
	AuthFile string
	// Log receives debug lines; nil discards them.
	Log *slog.Logger
}

// Store is an open image store. It is safe for use by one process at a time
// per Store value; containers/storage locks between processes.
type Store struct {
	store        storage.Store
	root         string
	driver       string
	driverReason string
	policyPath   string
	authFile     string
	log          *slog.Logger
}

// Open opens (creating if needed) the store under opts.Root.
func Open(opts Options) (*Store, error) {
	if opts.Root == "" {
		return nil, errors.New("open image store: no root directory given")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	runRoot := opts.RunRoot
	if runRoot == "" {
		runRoot = filepath.Join(opts.Root, "run")
	}
	// tmp is containers/image's BigFilesTemporaryDir: the archive
	// transports unpack into it already when reading the manifest, before
	// any pull, so it must exist from the first use on.
	if err := os.MkdirAll(filepath.Join(opts.Root, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("open image store %s: %w", opts.Root, err)
	}
	driver, reason, err := chooseDriver(opts.Root, opts.Driver)
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", opts.Root, err)
	}
	if opts.AuthFile != "" {
		// Read once here, so a wrong path is named before any pull, not as
		// an anonymous registry's "unauthorized".
		if _, err := os.ReadFile(opts.AuthFile); err != nil {
			return nil, fmt.Errorf("open image store: registry auth file: %w", err)
		}
	}
	policy := opts.SignaturePolicyPath
	if policy == "" {
		if policy, err = writeDefaultPolicy(opts.Root); err != nil {
			return nil, fmt.Errorf("open image store %s: %w", opts.Root, err)
		}
	}
	st, err := storage.GetStore(storage.StoreOptions{
		RunRoot:         runRoot,
		GraphRoot:       opts.Root,
		GraphDriverName: driver,
	})
	if err != nil && (opts.Driver == "" || opts.Driver == DriverAuto) && driver == DriverOverlay {
		log.Debug("overlay store failed, falling back to vfs", "err", err)
		reason = fmt.Sprintf("%s; overlay driver failed (%v), using vfs", reason, err)
		driver = DriverVFS
		st, err = storage.GetStore(storage.StoreOptions{RunRoot: runRoot, GraphRoot: opts.Root, GraphDriverName: driver})
	}
	if err != nil {
		return nil, fmt.Errorf("open image store %s (driver %s): %w", opts.Root, driver, err)
	}
	log.Debug("image store open", "root", opts.Root, "driver", driver, "reason", reason)
	return &Store{store: st, root: opts.Root, driver: driver, driverReason: reason, policyPath: policy, authFile: opts.AuthFile, log: log}, nil
}

// Driver returns the storage driver in use and why it was chosen.
func (s *Store) Driver() (name, reason string) { return s.driver, s.driverReason }

// Root returns the store's graph root.
func (s *Store) Root() string { return s.root }

// ErrLayerMounted is in Close's error when a layer is still mounted: by a
// running image build, or one a killed build left (imagebuild.CleanStale
// removes those).
var ErrLayerMounted = storage.ErrLayerUsedByContainer

// Close releases the store. Layers stay on disk; task roots made from them
// are independent of the Store value.
func (s *Store) Close() error {
	if _, err := s.store.Shutdown(false); err != nil {
		return fmt.Errorf("close image store %s: %w", s.root, err)
	}
	return nil
}

// DriverFor says which driver Open would use for a store at root, and why
// (for loftd doctor), without opening or creating anything.
func DriverFor(root, want string) (driver, reason string, err error) {
	return chooseDriver(root, want)
}

// chooseDriver applies "auto": keep the driver an existing store uses
// (containers/storage refuses to switch), else btrfs on btrfs, else overlay
// (the driver probes the kernel), else vfs when overlay cannot be used.
func chooseDriver(root, want string) (driver, reason string, err error) {
	switch want {
	case DriverBtrfs, DriverOverlay, DriverVFS:
		return want, "configured", nil
	case "", DriverAuto:
	default:
		return "", "", fmt.Errorf("unknown storage driver %q (want auto, btrfs, overlay or vfs)", want)
	}
	var existing []string
	for _, d := range []string{DriverBtrfs, DriverOverlay, DriverVFS} {
		if fi, err := os.Stat(filepath.Join(root, d+"-layers")); err == nil && fi.IsDir() {
			existing = append(existing, d)
		}
	}
	if len(existing) == 1 {
		return existing[0], fmt.Sprintf("store %s already uses %s", root, existing[0]), nil
	}
	if onBtrfs(root) {
		return DriverBtrfs, fmt.Sprintf("%s is on btrfs: layers are subvolumes, task roots are snapshots", root), nil
	}
	return DriverOverlay, fmt.Sprintf("%s is not on btrfs: native overlay", root), nil
}

func onBtrfs(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.BTRFS_SUPER_MAGIC
}

func writeDefaultPolicy(root string) (string, error) {
	p := filepath.Join(root, "policy.json")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.WriteFile(p, defaultPolicy, 0o644); err != nil {
		return "", fmt.Errorf("write default signature policy: %w", err)
	}
	return p, nil
}

// Package disks owns the per-workspace disks: sparse raw files holding a btrfs
// filesystem (nix.raw, containers.raw), and the workspace lock that keeps two
// VMs from writing them at once. It parses disk sizes, creates disks
// atomically, validates them before reuse (never reformatting anything that is
// not already one of ours), grows and resets them, and, for the guest side of
// a resize, grows a mounted btrfs to the size of its device.
//
// The guest init imports this package for ReadSuper (it finds its disks by
// their btrfs label) and GrowFilesystem, so it must stay
// small and cgo-free: it must not import host, rootfs, krun, buildah,
// containers/* or purego; the standard library and golang.org/x/sys only.
package disks

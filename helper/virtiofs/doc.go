// Package virtiofs owns how loftd hands a host directory to a virtiofsd
// (docs/architecture.md, "Security model"):
//
//   - OpenDir opens the directory itself (a read-only share as a detached
//     read-only clone of its mount), and Args gives virtiofsd that fd as
//     /proc/self/fd/N/: no user or guest byte reaches virtiofsd's options.
//   - Command wraps virtiofsd in `loftd internal virtiofsd`, which installs
//     Filter (no setuid/setgid bits, no device nodes) with no_new_privs and
//     then execs it; as root the wrapper starts in a user namespace that
//     IDMaps describes, so guest ids are never host ids.
//
// It must not import host, rootfs or buildah: the helper uses it.
package virtiofs

// Package review reads what a review run's guest wrote and lands it in the
// workspace on request. A review run shares the workspace through an
// overlay whose read-only lower layer is the workspace itself and whose
// upper layer lives in the run's state directory; this package compares
// that upper layer with the workspace as it is now (Scan), renders the
// difference (Diff, Summary) and applies all or part of it (Apply).
//
// The upper layer is the guest's work and is read as hostile input: every
// name is walked fd-relative, a symlink is read as a link and never
// followed, whiteouts and opaque directories are read with the xattr prefix
// of the overlay that made them (trusted.overlay. as root, user.overlay.
// rootless), and file contents are compared and diffed within bounds. The
// workspace is written the same way (openat2 RESOLVE_BENEATH|
// RESOLVE_NO_SYMLINKS): a link in the workspace is never written through.
//
// It imports only x/sys and go-difflib: no session, no state, no CLI.
package review

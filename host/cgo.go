//go:build cgo

package host

// cgoEnabled is false in a binary built without cgo, which cannot work:
// containers/storage's btrfs driver and its unshare re-exec need cgo.
const cgoEnabled = true

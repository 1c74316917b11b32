//go:build !cgo

package host

const cgoEnabled = false

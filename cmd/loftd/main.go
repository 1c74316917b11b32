// Command loftd runs a project directory inside a microVM.
package main

import (
	"os"

	"github.com/containers/buildah"
	"github.com/loftd/loftd/host"
)

func main() {
	// Buildah's copier and containers/storage re-exec this binary for their
	// helpers: dispatch those before anything else runs.
	if buildah.InitReexec() {
		return
	}
	os.Exit(host.Main("loftd", os.Args[1:]))
}

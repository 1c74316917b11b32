// Command loftd runs a project directory inside a microVM.
package main

import (
	"os"

	"github.com/loftd/loftd/host"
	"github.com/loftd/loftd/imagebuild"
)

func main() {
	// Buildah's copier and containers/storage re-exec this binary for their
	// helpers: dispatch those before anything else runs (imagebuild's
	// dispatcher also puts a RUN step in a PID namespace that dies with
	// the build).
	if imagebuild.InitReexec() {
		return
	}
	os.Exit(host.Main("loftd", os.Args[1:]))
}

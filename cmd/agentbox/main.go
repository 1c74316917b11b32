// Command agentbox is loftd with agent-friendly defaults: an interactive
// shell in a fresh microVM of the current project.
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
	os.Exit(host.Main("agentbox", os.Args[1:]))
}

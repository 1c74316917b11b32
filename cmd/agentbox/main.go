// Command agentbox is loftd with agent-friendly defaults: an interactive
// shell in a fresh microVM of the current project.
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
	os.Exit(host.Main("agentbox", os.Args[1:]))
}

// Command loftd-guest-init is the init loftd runs inside its VMs. It must be
// built static (CGO_ENABLED=0); all of its logic lives in package guestinit.
package main

import (
	"os"

	"github.com/loftd/loftd/guestinit"
)

func main() {
	os.Exit(guestinit.Main(os.Args))
}

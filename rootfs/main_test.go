package rootfs

import (
	"os"
	"testing"

	"github.com/containers/buildah"
)

func TestMain(m *testing.M) {
	// Buildah's copier and containers/storage re-exec this binary.
	if buildah.InitReexec() {
		return
	}
	if os.Getenv(killChildEnv) != "" {
		killChild() // never returns
	}
	os.Exit(m.Run())
}

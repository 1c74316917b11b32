package session

import (
	"strings"
	"testing"

	"github.com/loftd/loftd/images"
)

// TestDefaultImageName: the name a run looks for without --image is the
// name `loftd image build` gives, and the recipe is embedded.
func TestDefaultImageName(t *testing.T) {
	if defaultImage != images.Default {
		t.Errorf("run's default image %q, image build's default tag %q: want one name", defaultImage, images.Default)
	}
	if !strings.Contains(string(images.DefaultContainerfile), "ARG BASE=docker.io/library/debian:bookworm") {
		t.Errorf("embedded recipe lacks the registry BASE default:\n%s", images.DefaultContainerfile)
	}
}

// Package images holds the recipes of the images loftd builds itself,
// embedded so that an installed loftd can build them without a checkout.
// It owns files, not logic: imagebuild builds them.
package images

import _ "embed"

// DefaultContainerfile is images/default/Containerfile, the recipe of
// localhost/loftd:latest.
//
//go:embed default/Containerfile
var DefaultContainerfile []byte

// Default is the name `loftd image build` gives the default image and the
// image a run uses when neither --image nor [image] default names one.
const Default = "localhost/loftd:latest"

// DefaultBase is the name `loftd image import` gives an imported base root.
const DefaultBase = "localhost/debian-base:bookworm"

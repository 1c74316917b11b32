# loftd build and test entry points. `make test` is what CI runs.
GO       ?= go
TAGS     := containers_image_openpgp
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/loftd/loftd/host.Version=$(VERSION)
CACHE    := $(CURDIR)/.cache
KRUNFW   := $(CACHE)/libkrunfw

.PHONY: all build deps test vet demo clean
all: build

build:
	CGO_ENABLED=1 $(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/loftd ./cmd/loftd
	CGO_ENABLED=1 $(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/agentbox ./cmd/agentbox
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS) -X github.com/loftd/loftd/guestinit.Version=$(VERSION)' -o bin/loftd-guest-init ./cmd/loftd-guest-init

# deps installs the Debian packages loftd and its tests need (as root, only
# what is missing) and unpacks libkrunfw from sid into .cache (never dpkg -i).
deps:
	scripts/install-deps
	scripts/fetch-libkrunfw $(KRUNFW) >/dev/null

vet:
	$(GO) vet -tags $(TAGS) ./...

# test: deps, vet, then every test as root with real btrfs, Buildah and VMs;
# it prints the list of skipped tests at the end.
test: deps build vet
	LOFTD_LIBKRUNFW_LIBRARY=$${LOFTD_LIBKRUNFW_LIBRARY:-$$(scripts/fetch-libkrunfw $(KRUNFW))} scripts/test

# demo: the main job on a fresh machine: boot a microVM (QEMU TCG here, libkrun
# where installed) from a busybox root and run a command in it.
demo: deps build
	LOFTD_LIBKRUNFW_LIBRARY=$${LOFTD_LIBKRUNFW_LIBRARY:-$$(scripts/fetch-libkrunfw $(KRUNFW))} scripts/demo

clean:
	rm -rf bin

# image: build the default guest image localhost/loftd:latest (offline
# Debian base from mmdebstrap unless LOFTD_BASE names a registry image).
.PHONY: image
image: deps build
	scripts/default-image bin/loftd

# loftd build and test entry points. `make test` is what CI runs.
GO       ?= go
TAGS     := containers_image_openpgp
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/loftd/loftd/host.Version=$(VERSION)
CACHE    := $(CURDIR)/.cache
KRUNFW   := $(CACHE)/libkrunfw

.PHONY: all build deps test unit vet lint demo clean install
all: build

build:
	CGO_ENABLED=1 $(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/loftd ./cmd/loftd
	CGO_ENABLED=1 $(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/agentbox ./cmd/agentbox
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS) -X github.com/loftd/loftd/guestinit.Version=$(VERSION)' -o bin/loftd-guest-init ./cmd/loftd-guest-init

# deps installs the Debian packages loftd and its tests need (as root, only
# what is missing), unpacks libkrunfw from sid into .cache (never dpkg -i),
# builds a passt that carries TCP publishes from Debian 13's source
# (Debian 12's does not) into /usr/local/libexec/loftd, and builds the Rust
# virtiofsd 1.14.0 (into /usr/local/libexec/loftd) and libkrun 1.19.0 (into
# /usr/local/lib/loftd, with its libkrunfw beside it) from the Rust crate
# registry with cargo (rustup), as root. Each step is idempotent.
deps:
	scripts/install-deps
	scripts/fetch-libkrunfw $(KRUNFW) >/dev/null
	scripts/fetch-passt >/dev/null
	scripts/fetch-virtiofsd >/dev/null
	scripts/fetch-libkrun >/dev/null

vet:
	$(GO) vet -tags $(TAGS) ./...

# unit: the tests that need neither root nor a VM, in about half a minute
# (32 s warm on this 2-core machine under load). -short makes
# internal/testenv skip every root, btrfs, VM and real-libkrun test even as
# root; LOFTD_TEST_REQUIRE_ALL is unset so those skips are not failures.
# internal/e2e is left out: its TestMain builds the binaries.
UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/internal/e2e$$')
unit:
	env -u LOFTD_TEST_REQUIRE_ALL CGO_ENABLED=1 $(GO) test -tags $(TAGS) -short -count=1 $(UNIT_PKGS)

# lint: vet, staticcheck (pinned; installed into $(go env GOPATH)/bin on
# first use), shellcheck on scripts/ (Debian package, scripts/install-deps),
# and a go.mod that `go mod tidy` would not change. Not part of test yet.
STATICCHECK_VERSION := v0.8.2
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
lint: vet
	@$(STATICCHECK) -version 2>/dev/null | grep -q '($(STATICCHECK_VERSION:v%=%))' || \
	  GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	CGO_ENABLED=1 $(STATICCHECK) -tags $(TAGS) ./...
	shellcheck -x -P SCRIPTDIR $$(find scripts -type f)
	$(GO) mod tidy -diff

# test: deps, vet, then every test as root with real btrfs, Buildah and VMs;
# it prints the list of skipped tests at the end.
test: deps build vet
	LOFTD_LIBKRUNFW_LIBRARY=$${LOFTD_LIBKRUNFW_LIBRARY:-$$(scripts/fetch-libkrunfw $(KRUNFW))} scripts/test

# demo: the main job on a fresh machine: build the default guest image once
# (offline Debian base) and run a command in a microVM (QEMU TCG here, libkrun
# where installed) with this checkout as /workspace. libkrunfw goes
# to $XDG_DATA_HOME/loftd/lib, where bin/loftd finds it by itself afterwards.
demo: deps build
	scripts/fetch-libkrunfw >/dev/null
	scripts/demo

clean:
	rm -rf bin

# image: build the default guest image localhost/loftd:latest (offline
# Debian base from mmdebstrap unless LOFTD_BASE names a registry image).
.PHONY: image
image: deps build
	scripts/default-image bin/loftd

# install: the layout loftd finds its parts in without environment variables
# (docs/architecture.md, "Finding loftd's parts"). DESTDIR stages it.
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     := $(DESTDIR)$(PREFIX)/bin
LIBEXECDIR := $(DESTDIR)$(PREFIX)/libexec/loftd
LIBDIR     := $(DESTDIR)$(PREFIX)/lib/loftd
SHAREDIR   := $(DESTDIR)$(PREFIX)/share
XDG_DATA   := $(or $(XDG_DATA_HOME),$(HOME)/.local/share)
# The libkrunfw fetched by deps (.cache) or by scripts/fetch-libkrunfw (XDG),
# if any: installed beside loftd so the QEMU backend needs nothing else.
KRUNFW_LIB  = $(firstword $(wildcard $(KRUNFW)/usr/lib/*/libkrunfw.so.[0-9] $(XDG_DATA)/loftd/lib/libkrunfw.so.[0-9]))

# The passt scripts/fetch-passt built (as root or as you), if any: installed
# beside loftd when PREFIX is not where it already is.
PASST_BIN   = $(firstword $(wildcard /usr/local/libexec/loftd/passt $(XDG_DATA)/loftd/libexec/passt))

install: build
	install -d $(BINDIR) $(LIBEXECDIR) $(SHAREDIR)/loftd/images/default \
	  $(SHAREDIR)/bash-completion/completions $(SHAREDIR)/zsh/site-functions $(SHAREDIR)/fish/vendor_completions.d
	install -m 0755 bin/loftd bin/agentbox $(BINDIR)/
	install -m 0755 bin/loftd-guest-init $(LIBEXECDIR)/
	install -m 0644 images/default/Containerfile $(SHAREDIR)/loftd/images/default/
	for p in loftd agentbox; do \
	  bin/$$p completion bash >$(SHAREDIR)/bash-completion/completions/$$p && \
	  bin/$$p completion zsh >$(SHAREDIR)/zsh/site-functions/_$$p && \
	  bin/$$p completion fish >$(SHAREDIR)/fish/vendor_completions.d/$$p.fish || exit 1; \
	done
	@if [ -n "$(KRUNFW_LIB)" ]; then \
	  install -d $(LIBDIR) && install -m 0644 $(KRUNFW_LIB) $(LIBDIR)/$(notdir $(KRUNFW_LIB)) && \
	  echo "installed $(KRUNFW_LIB) as $(LIBDIR)/$(notdir $(KRUNFW_LIB))"; \
	else \
	  echo "libkrunfw not fetched: not installed (run scripts/fetch-libkrunfw, or install your distribution's libkrunfw)"; \
	fi
	@if [ -n "$(PASST_BIN)" ] && [ "$(PASST_BIN)" != "$(LIBEXECDIR)/passt" ]; then \
	  for f in $(PASST_BIN) $(PASST_BIN).avx2; do [ ! -e $$f ] || install -m 0755 $$f $(LIBEXECDIR)/ || exit 1; done; \
	  echo "installed $(PASST_BIN) as $(LIBEXECDIR)/passt"; \
	elif [ -z "$(PASST_BIN)" ]; then \
	  echo "passt not fetched: the system's is used (run scripts/fetch-passt for TCP publishes on Debian 12)"; \
	fi

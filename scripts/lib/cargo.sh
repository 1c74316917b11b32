# shellcheck shell=bash
# shellcheck shell=bash
# shellcheck disable=SC2154 # prog and cargo are set by the sourcing script
# Sourced by scripts/fetch-libkrun and scripts/fetch-virtiofsd: what both
# need to build a pinned release from the Rust crate registry, as the Go
# module proxy is used for Go: nothing of the crate is kept in this
# repository, and cargo's own caches make a second build fast.

# find_cargo: cargo from $PATH, else rustup's default place.
find_cargo() {
  if command -v cargo >/dev/null; then
    command -v cargo
  elif [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    echo "${CARGO_HOME:-$HOME/.cargo}/bin/cargo"
  else
    echo "$prog: cargo not found in \$PATH or ${CARGO_HOME:-$HOME/.cargo}/bin (install Rust with rustup: https://rustup.rs)" >&2
    return 1
  fi
}

# default_dir KIND: where an installed part goes when no DIR is given:
# the system's loftd directory as root (every loftd on the machine searches
# it), else the user's data directory (docs/architecture.md, "Finding
# loftd's parts"). KIND is libexec or lib.
default_dir() {
  if [ "$(id -u)" -eq 0 ]; then
    echo "/usr/local/$1/loftd"
  else
    echo "${XDG_DATA_HOME:-${HOME:?set HOME or XDG_DATA_HOME}/.local/share}/loftd/$1"
  fi
}

# cache_dir NAME: a build directory that survives fresh checkouts (CI
# clones anew each run), so a warm build only checks what it has.
cache_dir() {
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/loftd/build/$1"
}

# crate_source NAME VERSION: fetch NAME at exactly VERSION from the
# registry (checksummed by cargo against the index) and print the
# directory of its unpacked source in cargo's registry cache.
crate_source() {
  local name=$1 version=$2 probe
  probe=$(cache_dir "fetch-$name-$version")
  mkdir -p "$probe/src"
  [ -f "$probe/src/lib.rs" ] || : >"$probe/src/lib.rs"
  cat >"$probe/Cargo.toml" <<TOML
[package]
name = "loftd-fetch-$name"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$name = { version = "=$version", default-features = false }
TOML
  "$cargo" fetch --quiet --manifest-path "$probe/Cargo.toml" >&2
  "$cargo" metadata --format-version 1 --manifest-path "$probe/Cargo.toml" 2>/dev/null |
    grep -o "\"manifest_path\":\"[^\"]*/$name-$version/Cargo.toml\"" | head -n 1 |
    sed -e 's/^"manifest_path":"//' -e 's|/Cargo.toml"$||'
}

// Package nixcheck holds the checks of the Nix packaging (flake.nix,
// flake.lock, nix/) that can run without nixpkgs: our machines and CI have
// Debian's nix-bin but no nixpkgs and no binary cache, so the flake cannot
// be built here. The tests parse every .nix file, check the lock's shape
// and recompute buildGoModule's vendorHash from go.mod and go.sum. It has
// no non-test code and nothing imports it.
package nixcheck

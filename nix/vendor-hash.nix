# The NAR hash of `go mod vendor`'s output for the current go.mod and
# go.sum, which is what buildGoModule's vendorHash is. Recompute it after a
# dependency change with scripts/nix-vendor-hash; internal/nixcheck's
# TestNixVendorHash fails while it is stale.
"sha256-l30kVR8dW5zLuoWFkkn+opkPYWHtR2BQ1cNhHQuvQMc="

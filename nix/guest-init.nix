# loftd's guest init: static (CGO_ENABLED=0), so it runs in any image
# whatever its libc. Its own derivation because it is built without cgo
# and without the host's build tags; package.nix installs it under
# libexec/loftd/, where loftd looks for it next to its executable.
{
  lib,
  buildGo126Module,
  src,
  version,
  vendorHash,
}:

buildGo126Module {
  pname = "loftd-guest-init";
  inherit src version vendorHash;

  subPackages = [ "cmd/loftd-guest-init" ];
  env.CGO_ENABLED = 0;
  ldflags = [
    "-s"
    "-w"
    "-X github.com/loftd/loftd/guestinit.Version=${version}"
  ];
  # The unit tests run once, in the loftd derivation's checks.
  doCheck = false;

  meta = {
    description = "loftd's init inside the microVM";
    platforms = lib.platforms.linux;
  };
}

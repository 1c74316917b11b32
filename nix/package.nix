# loftd and agentbox: cgo (containers/storage's btrfs driver), the
# containers_image_openpgp tag (no gpgme), the static guest init from
# guest-init.nix under libexec/loftd/, and the runtime parts nixpkgs has
# wired in by a wrapper, so nothing needs an environment variable.
{
  lib,
  buildGo126Module,
  callPackage,
  makeWrapper,
  pkg-config,
  btrfs-progs,
  libkrun,
  libkrunfw,
  passt,
  virtiofsd,
  qemu_kvm,
  src,
  version,
  vendorHash ? import ./vendor-hash.nix,
}:

let
  guestInit = callPackage ./guest-init.nix {
    inherit src version vendorHash;
  };
  # nixpkgs builds libkrun without virtio-blk and virtio-net; loftd attaches
  # its /nix and containers disks as block devices and networks through
  # passt, so it needs both.
  libkrun' = libkrun.override {
    withBlk = true;
    withNet = true;
  };
  runtimePath = lib.makeBinPath [
    passt
    virtiofsd
    btrfs-progs
    qemu_kvm
  ];
in
buildGo126Module {
  pname = "loftd";
  inherit src version vendorHash;

  subPackages = [
    "cmd/loftd"
    "cmd/agentbox"
  ];
  tags = [ "containers_image_openpgp" ];
  env.CGO_ENABLED = 1;
  ldflags = [ "-X github.com/loftd/loftd/host.Version=${version}" ];

  nativeBuildInputs = [
    pkg-config
    makeWrapper
  ];
  # libbtrfs headers for containers/storage's btrfs graph driver.
  buildInputs = [ btrfs-progs ];

  # The unit tests that need no root, no KVM and no network; the rest run
  # in CI on a real machine (make test).
  checkPhase = ''
    runHook preCheck
    # Tests that need root, btrfs or a VM skip through internal/testenv.
    go test -tags containers_image_openpgp ./launch/... ./guestinit/... ./host/...
    runHook postCheck
  '';

  postInstall = ''
    install -Dm755 ${guestInit}/bin/loftd-guest-init $out/libexec/loftd/loftd-guest-init
  '';

  # libkrun installs to lib64; libkrunfw's soname carries its ABI version:
  # take the files that exist rather than guessing either.
  postFixup = ''
    krun=$(echo ${libkrun'}/lib*/libkrun.so.1)
    krunfw=$(echo ${libkrunfw}/lib*/libkrunfw.so.[0-9])
    for f in "$krun" "$krunfw"; do
      [ -e "$f" ] || { echo "missing runtime library $f" >&2; exit 1; }
    done
    mkdir -p $out/lib/loftd
    ln -s "$krun" $out/lib/loftd/
    ln -s "$krunfw" $out/lib/loftd/
    for p in loftd agentbox; do
      wrapProgram $out/bin/$p \
        --prefix PATH : ${runtimePath} \
        --set-default LOFTD_LIBKRUN_LIBRARY "$krun" \
        --set-default LOFTD_LIBKRUNFW_LIBRARY "$krunfw"
    done
  '';

  passthru = {
    inherit guestInit;
    libkrun = libkrun';
  };

  meta = {
    description = "Run a project directory inside a microVM (libkrun, or QEMU)";
    homepage = "https://github.com/loftd/loftd";
    mainProgram = "loftd";
    platforms = lib.platforms.linux;
  };
}

{
  description = "loftd: run a project directory inside a microVM";

  # nixpkgs is pinned (flake.lock) to nixos-unstable at 6201e203d095
  # (2026-04-01): the first published lock we found with Go 1.26, which
  # go.mod needs (buildGo126Module). The same rev and narHash appear in
  # independently published flake.lock files of that branch. Update with
  # `nix flake update`; internal/nixcheck checks the lock's shape.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      # libkrun, libkrunfw and virtiofsd are Linux-only.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system} system);
      version = self.shortRev or self.dirtyShortRev or "dev";
      # The Go sources only: editing a .nix file or the docs does not
      # rebuild loftd.
      src = nixpkgs.lib.fileset.toSource {
        root = ./.;
        fileset = nixpkgs.lib.fileset.difference ./. (
          nixpkgs.lib.fileset.unions [
            ./nix
            ./docs
            ./flake.nix
            ./flake.lock
            (nixpkgs.lib.fileset.maybeMissing ./bin)
            (nixpkgs.lib.fileset.maybeMissing ./.cache)
          ]
        );
      };
    in
    {
      packages = forAllSystems (pkgs: _: rec {
        loftd = pkgs.callPackage ./nix/package.nix { inherit src version; };
        loftd-guest-init = loftd.guestInit;
        default = loftd;
      });

      apps = forAllSystems (_: system: {
        default = {
          type = "app";
          program = "${self.packages.${system}.loftd}/bin/loftd";
        };
        agentbox = {
          type = "app";
          program = "${self.packages.${system}.loftd}/bin/agentbox";
        };
      });

      devShells = forAllSystems (
        pkgs: system:
        let
          loftd = self.packages.${system}.loftd;
        in
        {
          default = pkgs.mkShell {
            packages = [
              pkgs.go_1_26
              pkgs.gcc
              pkgs.pkg-config
              pkgs.btrfs-progs
              pkgs.passt
              pkgs.virtiofsd
              pkgs.qemu_kvm
              loftd.libkrun
              pkgs.libkrunfw
            ];
            # make build / make test in the shell find libkrun like the package does.
            LOFTD_LIBKRUN_LIBRARY = "${loftd.libkrun}/lib64/libkrun.so.1";
          };
        }
      );

      # The package's checkPhase runs the unit tests (those needing root,
      # btrfs or a VM skip through internal/testenv).
      checks = forAllSystems (_: system: {
        loftd = self.packages.${system}.loftd;
      });

      formatter = forAllSystems (pkgs: _: pkgs.nixfmt);
    };
}

{
  description = "netguardian: home-network security monitor, packaged for NixOS and as a Raspberry Pi 5 appliance";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    # Raspberry Pi 5 board support (vendor kernel, firmware, bootloader, SD image). Its own
    # pinned nixpkgs is used for the Pi system (nixosConfigurations.pi5) on purpose: that is
    # the package set its binary cache holds kernels and firmware for. To build everything
    # from one nixpkgs instead, add: nixos-raspberrypi.inputs.nixpkgs.follows = "nixpkgs";
    # (and expect to compile the Pi kernel).
    nixos-raspberrypi.url = "github:nvmd/nixos-raspberrypi/main";
  };

  # Prebuilt Pi kernels and firmware; Nix asks before using these settings.
  nixConfig = {
    extra-substituters = [ "https://nixos-raspberrypi.cachix.org" ];
    extra-trusted-public-keys = [
      "nixos-raspberrypi.cachix.org-1:4iMO9LXa8BqhU+Rpg6LQKiGa2lsNh/j2oiYLNOQ5sPI="
    ];
  };

  outputs =
    {
      self,
      nixpkgs,
      nixos-raspberrypi,
      ...
    }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      # nixpkgs' libduckdb when it is the release the Rust bindings expect (or newer), else
      # DuckDB compiled from the sources in libduckdb-sys.
      netguardianFor =
        pkgs:
        let
          p = pkgs.callPackage ./nix/package.nix { };
        in
        if p.systemDuckdbOk then p else p.override { bundledDuckdb = true; };
    in
    {
      packages = lib.recursiveUpdate (forAllSystems (pkgs: rec {
        netguardian = netguardianFor pkgs;
        # Always links nixpkgs' libduckdb (DUCKDB_LIB_DIR), whatever its version.
        netguardian-system-duckdb = pkgs.callPackage ./nix/package.nix { };
        # Always compiles DuckDB from the sources in libduckdb-sys (the cargo default; slow).
        netguardian-bundled = pkgs.callPackage ./nix/package.nix { bundledDuckdb = true; };
        default = netguardian;
      })) {
        # The appliance image: flash it with `zstdcat nixos-image-*.img.zst | dd of=/dev/sdX`.
        aarch64-linux.sdImage = self.nixosConfigurations.pi5.config.system.build.sdImage;
      };

      overlays.default = final: _prev: {
        netguardian = netguardianFor final;
      };

      nixosModules = {
        netguardian = import ./nix/module.nix;
        default = self.nixosModules.netguardian;
      };

      nixosConfigurations.pi5 = nixos-raspberrypi.lib.nixosSystem {
        # nixos-raspberrypi's board modules find their flake through this argument.
        specialArgs = { inherit nixos-raspberrypi; };
        modules = [
          self.nixosModules.default
          ./nix/pi5.nix
        ];
      };

      checks = {
        x86_64-linux = {
          vm = import ./nix/vm-test.nix {
            pkgs = nixpkgs.legacyPackages.x86_64-linux;
            nixosModule = self.nixosModules.default;
          };
          package = self.packages.x86_64-linux.default;
        };
      };

      devShells = forAllSystems (
        pkgs:
        let
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        in
        {
          default = pkgs.mkShell {
            inputsFrom = [ package ];
            packages = [
              pkgs.cargo
              pkgs.rustc
              pkgs.clippy
              pkgs.rustfmt
              pkgs.rust-analyzer
              pkgs.duckdb
              pkgs.tcpdump
              package.trainerPython
            ];
            # `cargo build --no-default-features` links nixpkgs' libduckdb through these
            # instead of compiling DuckDB (plain `cargo build` still compiles it, as in CI).
            DUCKDB_LIB_DIR = "${lib.getLib pkgs.duckdb}/lib";
            DUCKDB_INCLUDE_DIR = "${lib.getDev pkgs.duckdb}/include";
            LD_LIBRARY_PATH = "${lib.getLib pkgs.duckdb}/lib";
          };
        }
      );

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree or pkgs.nixfmt-rfc-style);
    };
}

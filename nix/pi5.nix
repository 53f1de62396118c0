# The netguardian appliance: NixOS for a Raspberry Pi 5, built as an SD-card image.
#
#   nix build .#packages.aarch64-linux.sdImage      # = nixosConfigurations.pi5.config.system.build.sdImage
#
# Evaluated by flake.nix with nixos-raspberrypi.lib.nixosSystem, which passes the
# `nixos-raspberrypi` flake in specialArgs, sets the host platform to aarch64-linux and adds
# its kernel/firmware overlays. Building needs an aarch64-linux builder (a remote builder, or
# boot.binfmt.emulatedSystems = [ "aarch64-linux" ] on an x86_64 NixOS host: slow).
#
# Before building: put your SSH public key in `adminKeys` below.
{
  config,
  lib,
  pkgs,
  nixos-raspberrypi,
  ...
}:

let
  # SSH public keys of the `admin` user (password logins over SSH are off).
  adminKeys = [
    # "ssh-ed25519 AAAA... you@laptop"
  ];
in
{
  imports = with nixos-raspberrypi.nixosModules; [
    # Board support: vendor kernel (bcm2712), firmware, config.txt, bootloader.
    raspberry-pi-5.base
    # The Pi 5 kernel uses 16 KiB memory pages. Programs whose jemalloc was built for 4 KiB
    # pages abort at start ("<jemalloc>: Unsupported system page size"); this module rebuilds
    # nixpkgs' jemalloc for larger pages, for whatever else on the system uses it.
    raspberry-pi-5.page-size-16k
    # Makes config.system.build.sdImage (firmware partition + ext4 root, grown on first boot).
    sd-image
  ];

  networking.hostName = "netguardian";
  time.timeZone = lib.mkDefault "UTC";
  # The release the first image was built from; keep it when upgrading.
  system.stateVersion = "25.11";

  services.netguardian = {
    enable = true;
    # netguardian itself uses the system allocator (no jemalloc crate in Cargo.lock), and the
    # DuckDB that libduckdb-sys compiles (bundled-duckdb) is built without jemalloc too, so
    # nothing in the process depends on the page size. Bundling also guarantees the DuckDB
    # release the Rust bindings were generated for, whatever nixpkgs' duckdb is.
    package = pkgs.callPackage ./package.nix { bundledDuckdb = true; };
    # The default-route interface: the Pi's Ethernet port (end0) on a wired network. Put the
    # Pi on a switch port that mirrors the uplink to see every device's traffic.
    interface = "auto";
    # The API and its explorer (http://netguardian.local:8080/docs) on the LAN; every request
    # needs the bearer token (`sudo netguardian token`).
    listenAddress = "0.0.0.0";
    openFirewall = true;
  };

  # Reach the appliance as netguardian.local.
  services.avahi = {
    enable = true;
    nssmdns4 = true;
    openFirewall = true;
    publish = {
      enable = true;
      addresses = true;
    };
  };

  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "no";
    };
  };

  users.users.admin = {
    isNormalUser = true;
    extraGroups = [ "wheel" ];
    openssh.authorizedKeys.keys = adminKeys;
    # Without a key, only the console (HDMI + keyboard) works, with this password: change it
    # with `passwd` at the first login.
    initialPassword = lib.mkIf (adminKeys == [ ]) "netguardian";
  };
  security.sudo.wheelNeedsPassword = adminKeys == [ ];

  warnings = lib.optional (adminKeys == [ ]) ''
    nix/pi5.nix: no SSH key in adminKeys; the image only allows a console login as admin
    with the password "netguardian". Add your public key before building the image.
  '';

  # An SD card is small and wears out: cap the journal.
  services.journald.extraConfig = ''
    SystemMaxUse=200M
  '';

  # Upgrades: nixos-rebuild switch --flake .#pi5 --target-host admin@netguardian.local --sudo
  nix.settings = {
    experimental-features = [
      "nix-command"
      "flakes"
    ];
    trusted-users = [ "@wheel" ];
  };

  environment.systemPackages = [ pkgs.tcpdump ];
}

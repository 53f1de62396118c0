# netguardian, built with rustPlatform.buildRustPackage from the repository's Cargo.lock.
#
#   pkgs.callPackage ./nix/package.nix { }                         # links nixpkgs' libduckdb
#   pkgs.callPackage ./nix/package.nix { bundledDuckdb = true; }   # compiles DuckDB's C++ itself
#
# Outputs: bin/netguardian; bin/netguardian-train-models (the Python trainer,
# `python3 -m netguardian_models.train` in its own interpreter); share/netguardian/models (the
# default ONNX models shipped in models/); lib/systemd/system (the units from systemd/, with
# ExecStart pointing at this package). passthru.trainerPython is that Python environment;
# passthru.systemDuckdbOk says whether nixpkgs' duckdb is at least the release libduckdb-sys
# was made for (flake.nix and the NixOS module fall back to bundledDuckdb = true otherwise).
{
  lib,
  rustPlatform,
  pkg-config,
  libpcap,
  duckdb,
  python3,
  makeWrapper,
  # true: the `bundled-duckdb` cargo feature (default in Cargo.toml) compiles DuckDB from the
  # sources inside libduckdb-sys: slow (about an hour on two cores), no jemalloc, no outside
  # library to match. false: link nixpkgs' `duckdb` through DUCKDB_LIB_DIR/DUCKDB_INCLUDE_DIR.
  bundledDuckdb ? false,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;
  cargoLock = lib.importTOML ../Cargo.lock;

  # libduckdb-sys encodes the DuckDB release in its version: 1.MMmmpp.x is DuckDB MM.mm.pp
  # (1.20000.1 is DuckDB 2.0.0). Its pregenerated bindings are for that release's C API, so
  # a system libduckdb must be at least that version.
  duckdbSys = lib.findFirst (p: p.name == "libduckdb-sys") null cargoLock.package;
  duckdbWanted =
    if duckdbSys == null then
      null
    else
      let
        n = lib.toInt (builtins.elemAt (lib.splitString "." duckdbSys.version) 1);
      in
      "${toString (n / 10000)}.${toString (lib.mod (n / 100) 100)}.${toString (lib.mod n 100)}";
  # Whether nixpkgs' duckdb is recent enough to link against (see passthru.systemDuckdbOk).
  systemDuckdbOk = duckdbWanted == null || !lib.versionOlder duckdb.version duckdbWanted;

  # The trainer's requirements (models/requirements.txt, which pins the versions it was
  # tested with; here nixpkgs' versions): numpy, scipy, scikit-learn, onnx, onnxruntime,
  # duckdb. The trainer reads Parquet exports or a DuckDB file; python duckdb must be able
  # to read files written by the DuckDB the service links (see duckdbWanted).
  trainerPython = python3.withPackages (ps: [
    ps.numpy
    ps.scipy
    ps.scikit-learn
    ps.onnx
    ps.onnxruntime
    ps.duckdb
  ]);

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      (lib.fileset.maybeMissing ../models)
      (lib.fileset.maybeMissing ../systemd)
      (lib.fileset.maybeMissing ../config.example.toml)
    ];
  };
in
rustPlatform.buildRustPackage {
  pname = cargoToml.package.name;
  version = cargoToml.package.version;
  inherit src;

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [
    pkg-config # libpcap via the pcap crate's build script
    makeWrapper
  ];
  # The bundled DuckDB is compiled by libduckdb-sys's build script with the `cc` crate and
  # stdenv's C++ compiler: no cmake or python needed.
  buildInputs = [ libpcap ] ++ lib.optionals (!bundledDuckdb) [ duckdb ];

  buildNoDefaultFeatures = !bundledDuckdb;
  buildFeatures = lib.optionals bundledDuckdb [ "bundled-duckdb" ];

  env = lib.optionalAttrs (!bundledDuckdb) {
    # The warning shows when this derivation is built or instantiated, not when a caller
    # only looks at passthru.systemDuckdbOk to choose the variant (as flake.nix does).
    DUCKDB_LIB_DIR =
      lib.warnIf (!systemDuckdbOk)
        "netguardian: nixpkgs' duckdb is ${duckdb.version} but libduckdb-sys ${duckdbSys.version} expects DuckDB ${duckdbWanted}; linking may fail. Use a newer nixpkgs, override `duckdb`, or set bundledDuckdb = true."
        "${lib.getLib duckdb}/lib";
    DUCKDB_INCLUDE_DIR = "${lib.getDev duckdb}/include";
  };

  # The test suite needs what a build sandbox lacks: the shared capture corpus
  # (../shared/corpus, outside this repository) and root for the live-capture tests
  # (network namespaces, veth pairs). CI runs it with `scripts/test` instead.
  doCheck = false;

  postInstall = ''
    # Default models, for a first start before any retraining.
    if [ -d models ]; then
      (cd models && find . -type f \( -name '*.onnx' -o -name '*.json' \) \
        -not -path './netguardian_models/*' -not -path './tests/*' -print0 |
        while IFS= read -r -d "" f; do
          install -Dm644 "$f" "$out/share/netguardian/models/$f"
        done)
    fi

    # The Python trainer: the netguardian_models package next to its own interpreter.
    if [ -d models/netguardian_models ]; then
      mkdir -p "$out/lib/netguardian/python"
      cp -r models/netguardian_models "$out/lib/netguardian/python/"
      makeWrapper ${trainerPython}/bin/python3 "$out/bin/netguardian-train-models" \
        --prefix PYTHONPATH : "$out/lib/netguardian/python" \
        --add-flags "-m netguardian_models.train"
    fi

    # Every configuration key with its default, commented out.
    if [ -f config.example.toml ]; then
      install -Dm644 config.example.toml "$out/share/doc/netguardian/config.example.toml"
    fi

    # The systemd units, for use outside NixOS (NixOS uses nix/module.nix).
    for u in systemd/*.service systemd/*.timer; do
      [ -e "$u" ] || continue
      install -Dm644 "$u" "$out/lib/systemd/system/$(basename "$u")"
      substituteInPlace "$out/lib/systemd/system/$(basename "$u")" \
        --replace-quiet /usr/bin/netguardian "$out/bin/netguardian"
    done
  '';

  passthru = {
    inherit trainerPython bundledDuckdb systemDuckdbOk;
    # The DuckDB release libduckdb-sys was made for, from Cargo.lock.
    duckdbVersion = duckdbWanted;
  };

  meta = {
    description = cargoToml.package.description;
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "netguardian";
    platforms = lib.platforms.linux;
  };
}

# The kubepki binary, built from this repository with Cargo.lock.
#
# Tests are off by default: they drive real consumers (Go age, openssl, etcd,
# kubectl, nix) which the flake's `checks.<system>.tests` supplies by building
# this with `doCheck = true`. git2 is built without its https/ssh features, so
# libgit2 is vendored and only needs zlib; rustls uses ring, so no OpenSSL is
# linked.
{
  lib,
  rustPlatform,
  pkg-config,
  zlib,
  age,
  openssl,
  etcd,
  kubectl,
  nix,
  git,
  openssh,
  doCheck ? false,
  # A nixpkgs checkout for the module-evaluation tests (tests/nix_modules.rs).
  nixpkgsPath ? null,
}:
let
  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);
  fs = lib.fileset;
in
rustPlatform.buildRustPackage {
  pname = cargoToml.package.name;
  inherit (cargoToml.package) version;

  src = fs.toSource {
    root = ../.;
    fileset = fs.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../benches
      ../tests
      # The tests read the example inventory and evaluate the Nix helpers and modules.
      ../hosts
      ../nix
      ../modules
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ pkg-config ];
  buildInputs = [ zlib ];

  inherit doCheck;
  nativeCheckInputs = [
    age
    openssl
    etcd
    kubectl
    nix
    git
    openssh
  ];
  preCheck = ''
    export HOME=$TMPDIR
    # nix-instantiate needs a store it may write to; a chroot store under $TMPDIR.
    export NIX_REMOTE="local?root=$TMPDIR/nix-root"
    export NIX_STATE_DIR=$TMPDIR/nix-root/nix/var/nix
    git config --global user.name kubepki-tests
    git config --global user.email tests@kubepki.invalid
    git config --global init.defaultBranch main
  ''
  + lib.optionalString (nixpkgsPath != null) ''
    export NIXPKGS_LIB=${nixpkgsPath}
  '';

  meta = {
    description = cargoToml.package.description;
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "kubepki";
    platforms = lib.platforms.linux;
  };
}

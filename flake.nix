{
  description = "kubepki: the whole PKI and bootstrap of a NixOS-managed Kubernetes cluster, from hosts/cluster.toml";

  # nixos-unstable: the crate needs Rust 1.89 (edition 2024, rust-version in
  # Cargo.toml), newer than nixos-25.05's toolchain.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # The one source of truth: every host, role, address and CIDR below comes from it.
      inventoryFile = ./hosts/cluster.toml;
      inventory = import ./nix/inventory.nix { inherit lib; } inventoryFile;

      # An app that runs kubepki on the working tree's inventory (not the flake's
      # store copy), so recreate writes and commits into your clone.
      certsApp =
        pkgs: name: command: description:
        let
          script = pkgs.writeShellApplication {
            inherit name;
            runtimeInputs = [
              self.packages.${pkgs.stdenv.hostPlatform.system}.default
              pkgs.git
            ];
            text = ''
              if ! root="$(git rev-parse --show-toplevel 2>/dev/null)"; then
                echo "${name}: run this inside your clone of the cluster repository (git rev-parse --show-toplevel failed)" >&2
                exit 1
              fi
              exec kubepki ${command} --inventory "$root/hosts/cluster.toml" "$@"
            '';
          };
        in
        {
          type = "app";
          program = "${script}/bin/${name}";
          meta.description = description;
        };

      host =
        node:
        lib.nixosSystem {
          modules = [
            self.nixosModules.default
            ./hosts/${node.name}/configuration.nix
            (
              { pkgs, ... }:
              {
                networking.hostName = node.name;
                services.kubepki = {
                  enable = true;
                  inventory = inventoryFile;
                  package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
                };
              }
            )
          ];
        };
    in
    {
      packages = forAllSystems (pkgs: rec {
        kubepki = pkgs.callPackage ./nix/package.nix { };
        default = kubepki;
      });

      apps = forAllSystems (pkgs: rec {
        # Issues, seals and commits only what changed; `-- --push` also pushes.
        certs-recreate = certsApp pkgs "certs-recreate" "recreate" "Recreate the cluster PKI from hosts/cluster.toml and commit the bundle";
        certs-plan = certsApp pkgs "certs-plan" "plan" "Show every certificate per node and what recreate would change";
        certs-check = certsApp pkgs "certs-check" "check" "Report certificate and CA expiry; non-zero inside the renewal window";
        default = certs-plan;
      });

      nixosModules = {
        default = ./modules/default.nix;
        kubepki = ./modules/kubepki.nix;
        control-plane = ./modules/control-plane.nix;
        worker = ./modules/worker.nix;
      };

      # One system per [[nodes]] entry; each needs hosts/<name>/configuration.nix.
      nixosConfigurations = lib.listToAttrs (
        map (node: {
          inherit (node) name;
          value = host node;
        }) inventory.nodeList
      );

      checks = lib.genAttrs systems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
        in
        {
          # The Rust test suite with its real consumers, module evaluation included.
          tests = self.packages.${system}.default.override {
            doCheck = true;
            nixpkgsPath = nixpkgs.outPath;
          };
        }
        // lib.optionalAttrs (system == "x86_64-linux") {
          # A control plane and a worker booted from the example bundle; waits for the worker to be Ready.
          cluster = import ./nix/vm-test.nix {
            inherit pkgs self inventoryFile;
          };
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.default ];
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            rust-analyzer
            age
            openssl
            etcd
            kubectl
            nix
            git
            openssh
          ];
          # Lets tests/nix_modules.rs evaluate the NixOS modules.
          NIXPKGS_LIB = nixpkgs.outPath;
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);
    };
}

# TEST ONLY: declarations standing in for the NixOS options kubepki's modules
# read or set, so `lib.evalModules` can check kubepki's own options, its
# assertions and the values it sets without a nixpkgs checkout (this machine
# has only nixpkgs' lib). Services kubepki merely configures are free-form
# (`types.anything`); the few options the modules read declare the default
# nixpkgs gives them. Nothing here is used outside tests/nix_modules.rs.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  freeform =
    extra:
    mkOption {
      type = types.submodule {
        freeformType = types.attrsOf types.anything;
        options = extra;
      };
      default = { };
    };
  list = mkOption {
    type = types.listOf types.anything;
    default = [ ];
  };
  fakeStorePath = name: "${builtins.storeDir}/00000000000000000000000000000000-${name}";
in
{
  options = {
    assertions = list;
    warnings = list;
    networking.hostName = mkOption { type = types.str; };
    networking.firewall = freeform {
      allowedTCPPorts = list;
      allowedUDPPorts = list;
      trustedInterfaces = list;
    };
    environment.systemPackages = list;
    # nixpkgs' default host keys (services/networking/ssh/sshd.nix).
    services.openssh.hostKeys = mkOption {
      type = types.listOf types.attrs;
      default = [
        {
          type = "rsa";
          bits = 4096;
          path = "/etc/ssh/ssh_host_rsa_key";
        }
        {
          type = "ed25519";
          path = "/etc/ssh/ssh_host_ed25519_key";
        }
      ];
    };
    services.kubernetes = freeform {
      roles = list;
      package = mkOption {
        type = types.str;
        default = fakeStorePath "kubernetes";
      };
      kubelet = freeform {
        port = mkOption {
          type = types.port;
          default = 10250;
        };
      };
      addonManager = freeform {
        bootstrapAddons = mkOption {
          type = types.attrsOf types.anything;
          default = { };
        };
        addons = mkOption {
          type = types.attrsOf types.anything;
          default = { };
        };
      };
    };
    services.etcd = freeform { };
    nix.settings = freeform { };
    boot.kernel.sysctl = mkOption {
      type = types.attrsOf types.anything;
      default = { };
    };
    virtualisation.containerd = freeform { };
    systemd.services = mkOption {
      type = types.attrsOf (types.attrsOf types.anything);
      default = { };
    };
    system.activationScripts = mkOption {
      type = types.attrsOf types.anything;
      default = { };
    };
  };
  config._module.args.pkgs = {
    writeText = name: text: builtins.toFile name text;
    # For modules/calico.nix in the full-role evaluation: derivations that only name themselves.
    runCommand = name: _: _: {
      type = "derivation";
      inherit name;
      outPath = fakeStorePath name;
    };
    fetchurl = args: {
      type = "derivation";
      inherit (args) name;
      outPath = fakeStorePath args.name;
    };
    calico-cni-plugin = {
      type = "derivation";
      outPath = fakeStorePath "calico-cni-plugin";
    };
    kubectl = {
      type = "derivation";
      outPath = fakeStorePath "kubectl";
    };
    callPackage = _: _: throw "tests/nix/nixos-stubs.nix: set services.kubepki.package; there is no nixpkgs here";
  };
  config.services.kubepki.package = fakeStorePath "kubepki";
}

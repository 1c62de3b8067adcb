# TEST ONLY: evaluates kubepki's NixOS modules with nixpkgs' real
# `lib.evalModules` for one node and returns, as JSON-able data, the failed
# assertions and the values the modules set. Called by tests/nix_modules.rs.
{
  nixpkgsLib,
  inventory,
  node,
  modules ? [ ],
  settings ? { },
  # Evaluate the roles as the flake's hosts do (modules/default.nix, with Calico and the cache).
  roles ? false,
}:
let
  lib = import (/. + nixpkgsLib + "/lib");
  eval = lib.evalModules {
    modules = [
      ./nixos-stubs.nix
    ]
    ++ (
      if roles then
        [ ../../modules/default.nix ]
      else
        [
          ../../modules/kubepki.nix
          ../../modules/kubernetes/node.nix
          ../../modules/kubernetes/etcd.nix
          ../../modules/kubernetes/control-plane.nix
        ]
    )
    ++ [
      {
        networking.hostName = node;
        services.kubepki = {
          enable = true;
          inventory = /. + inventory;
        } // settings;
      }
    ] ++ map (m: /. + m) modules;
  };
  config = eval.config;
in
{
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
  kubepki = {
    inherit (config.services.kubepki)
      nodeName
      identityPaths
      targetDir
      keepGenerations
      mode
      metricsDir
      ;
    bundle = toString config.services.kubepki.bundle;
    bootstrapObjects = config.services.kubepki.bootstrap.objects;
    material = {
      inherit (config.services.kubepki.material) files kubeconfigs units;
    };
  };
  activationScript = config.system.activationScripts.kubepki or null;
  systemdServices = config.systemd.services;
  kubernetes = config.services.kubernetes;
  etcd = config.services.etcd;
  containerd = config.virtualisation.containerd;
  firewall = config.networking.firewall;
  sysctl = config.boot.kernel.sysctl;
}

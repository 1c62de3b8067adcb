# TEST ONLY: evaluates modules/calico.nix with nixpkgs' real `lib.evalModules`
# for one node and returns, as JSON, what the module sets. The options it reads
# from the rest of kubepki (services.kubepki.{cluster,material,...}, declared
# by modules/kubepki.nix) and the few nixpkgs options it sets are stubbed here,
# and `pkgs` is a stand-in whose derivations record their build scripts.
# Called by tests/calico_nix.rs.
{
  nixpkgsLib,
  inventory,
  node,
}:
let
  lib = import (/. + nixpkgsLib + "/lib");
  inherit (lib) mkOption types;
  spec = builtins.fromTOML (builtins.readFile inventory);
  nodes = builtins.listToAttrs (
    map (n: {
      name = n.name;
      value = n // {
        isControlPlane = builtins.elem "control-plane" n.roles;
      };
    }) spec.nodes
  );
  fake = name: "${builtins.storeDir}/00000000000000000000000000000000-${name}";
  pkgs = {
    runCommand = name: env: script: {
      inherit name script;
      type = "derivation";
      outPath = fake name;
    };
    fetchurl = args: args // {
      type = "derivation";
      outPath = fake args.name;
    };
    calico-cni-plugin = {
      type = "derivation";
      version = "3.30.3";
      outPath = fake "calico-cni-plugin-3.30.3";
    };
    kubectl = {
      type = "derivation";
      outPath = fake "kubectl";
    };
  };
  stubs = {
    options = {
      assertions = mkOption {
        type = types.listOf types.anything;
        default = [ ];
      };
      services.kubepki = {
        enable = mkOption { type = types.bool; };
        package = mkOption { type = types.anything; };
        inventory = mkOption { type = types.path; };
        nodeName = mkOption { type = types.str; };
        targetDir = mkOption { type = types.str; };
        cluster = mkOption { type = types.raw; };
        material = mkOption { type = types.raw; };
      };
      services.kubernetes.kubelet.cni = {
        packages = mkOption {
          type = types.listOf types.anything;
          default = [ ];
        };
        configDir = mkOption {
          type = types.nullOr types.anything;
          default = null;
        };
      };
      systemd.services = mkOption {
        type = types.attrsOf (types.attrsOf types.anything);
        default = { };
      };
    };
    config = {
      _module.args.pkgs = pkgs;
      services.kubepki = {
        enable = true;
        package = fake "kubepki";
        inventory = /. + inventory;
        nodeName = node;
        targetDir = "/run/kubepki";
        cluster = {
          inherit spec;
          node = name: nodes.${name};
        };
        material.kubeconfig = name: "/run/kubepki/current/${name}.kubeconfig";
      };
    };
  };
  eval = lib.evalModules {
    modules = [
      stubs
      ../../modules/calico.nix
    ];
  };
  c = eval.config;
  apply = c.systemd.services.kubepki-calico-apply or null;
in
{
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  cniPackages = map (p: p.script) c.services.kubernetes.kubelet.cni.packages;
  cniConfigDir = c.services.kubernetes.kubelet.cni.configDir.script;
  rendered = c.services.kubepki.calico.manifests.script;
  crds =
    if c.services.kubepki.calico.crds == null then
      null
    else
      { inherit (c.services.kubepki.calico.crds) url sha256; };
  apply =
    if apply == null then
      null
    else
      {
        inherit (apply) script wantedBy after;
        kubeconfig = apply.environment.KUBECONFIG;
        type = apply.serviceConfig.Type;
      };
}

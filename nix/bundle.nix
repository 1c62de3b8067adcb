# The bundle manifest (hosts/pki/manifest.json) as the NixOS modules see it:
# where each of a node's files will be once `kubepki activate` installed them.
#
# The manifest's `nodes.<node>` section is the certificate plan's NodePlan:
# `files` (material, part, install name, owner, units) and `kubeconfigs`.
# This helper turns it into paths under `<targetDir>/current/`, so a module
# writes `material.file "apiserver" "certificate"` and never types a file name.
# It reads only manifest.json, which holds no secret; sealed keys are never
# read at evaluation time (they would land in the Nix store).
#
#   bundle = import ./nix/bundle.nix { inherit lib; } ./hosts/pki;
#   m = bundle.forNode { node = "ec2-controlplane"; targetDir = "/run/kubepki"; };
#   m.file "kubernetes-ca" "trust-bundle"   # "/run/kubepki/current/ca.crt"
#   m.kubeconfig "super-admin"              # "/run/kubepki/current/super-admin.kubeconfig"
{
  lib ? null,
}:
bundleDir:
let
  inherit (builtins)
    attrNames
    concatStringsSep
    foldl'
    hasAttr
    listToAttrs
    ;
  manifestFile = bundleDir + "/manifest.json";
  recreate = "Fix: run `nix run .#certs-recreate` and commit hosts/pki.";
  manifest =
    if !builtins.pathExists manifestFile then
      throw "kubepki: there is no bundle manifest at ${toString manifestFile}. ${recreate}"
    else
      let
        m = builtins.fromJSON (builtins.readFile manifestFile);
      in
      if (m.format or null) != 1 then
        throw "kubepki: ${toString manifestFile} has format ${toString (m.format or "none")}; this module reads format 1. Fix: update the kubepki flake input or re-run certs-recreate with this version."
      else
        m;

  forNode =
    { node, targetDir }:
    let
      plan =
        manifest.nodes.${node} or (throw (
          "kubepki: the bundle ${toString manifestFile} has nothing for node `${node}` (it has: "
          + concatStringsSep ", " (attrNames manifest.nodes)
          + "). ${recreate}"
        ));
      current = "${targetDir}/current";
      # material -> part -> installed path
      files = foldl' (
        acc: f:
        acc
        // {
          ${f.material} = (acc.${f.material} or { }) // {
            ${f.part} = "${current}/${f.install}";
          };
        }
      ) { } plan.files;
      kubeconfigs = listToAttrs (
        map (k: {
          inherit (k) name;
          value = "${current}/${k.install}";
        }) plan.kubeconfigs
      );
      units = foldl' (acc: u: if builtins.elem u acc then acc else acc ++ [ u ]) [ ] (
        builtins.concatLists (map (f: f.units) (plan.files ++ plan.kubeconfigs))
      );
    in
    rec {
      inherit files kubeconfigs units;
      inherit (plan) roles;
      # The installed path of one part of a material; a clear error if the plan has none for this node.
      file =
        material: part:
        if hasAttr material files && hasAttr part files.${material} then
          files.${material}.${part}
        else
          throw "kubepki: node `${node}` receives no ${part} of `${material}` in ${toString manifestFile} (its roles: ${concatStringsSep ", " plan.roles}). ${recreate}";
      has = material: part: hasAttr material files && hasAttr part files.${material};
      # nixpkgs' `services.kubernetes.*.kubeconfig` submodule for a client identity of this node.
      kubeconfigOptions = server: material: {
        inherit server;
        caFile = file "kubernetes-ca" "trust-bundle";
        certFile = file material "certificate";
        keyFile = file material "secret";
      };
      kubeconfig =
        name:
        kubeconfigs.${name}
          or (throw "kubepki: node `${node}` receives no `${name}` kubeconfig in ${toString manifestFile}. ${recreate}");
    };
in
{
  inherit manifest manifestFile forNode;
  cluster = manifest.cluster;
}

# services.kubepki.calico: Calico (Kubernetes datastore, no operator) on this
# node, entirely from hosts/cluster.toml.
#
# Every node gets the CNI: nixpkgs' `calico-cni-plugin` in the CNI bin dir
# under both names the plugin answers to (`calico`, `calico-ipam`), and the
# `10-calico.conflist` that `kubepki calico` renders (pod MTU derived from the
# inventory, the calico-cni kubeconfig that activation installs). A
# control-plane node also applies, once the API server is ready, the release's
# CRDs (fetched by version and pinned by `calico.crds_sha256`) and the rendered
# manifests (RBAC, calico-config, calico-node, kube-controllers, IP pools,
# FelixConfiguration) with server-side apply.
#
# Nothing here is typed twice: the version, the CRD hash, the MTU, the CIDRs
# and the modes come from the inventory, and the manifests are rendered at
# build time by the same `kubepki calico` an operator runs by hand. This module
# does not decide any of those values and does not run `kubepki lint` (do that
# before deploying; `kubepki calico` warns too).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  top = config.services.kubepki;
  cfg = top.calico;
  inherit (lib) mkIf mkMerge mkOption types;

  calico = top.cluster.spec.calico;
  version = calico.version;
  crdsSha256 = calico.crds_sha256 or null;
  thisNode = top.cluster.node top.nodeName;

  # The inventory's folder with the host keys it names, as one store path, so
  # `kubepki calico` can load and validate it in the build sandbox. The sealed
  # bundle is left out: a certificate renewal should not re-render Calico.
  bundleDir = toString (dirOf top.inventory) + "/" + ((top.cluster.spec.pki or { }).bundle or "pki");
  hostsDir = builtins.path {
    path = dirOf top.inventory;
    name = "kubepki-hosts";
    filter = path: type: !(type == "directory" && path == bundleDir);
  };

  rendered = pkgs.runCommand "kubepki-calico-${version}" { } ''
    ${top.package}/bin/kubepki calico \
      --inventory ${hostsDir}/${baseNameOf (toString top.inventory)} \
      --material-dir ${lib.escapeShellArg "${top.targetDir}/current"} \
      --out $out
  '';

  # Only the conflist: nixpkgs links this folder to /etc/cni/net.d.
  cniConfig = pkgs.runCommand "kubepki-calico-cni-config-${version}" { } ''
    mkdir -p $out
    cp ${rendered}/10-calico.conflist $out/10-calico.conflist
  '';

  # The plugin decides what it is from its file name: `calico-ipam` is the same binary.
  cniPlugins = pkgs.runCommand "calico-cni-plugins-${cfg.cniPackage.version or version}" { } ''
    mkdir -p $out/bin
    ln -s ${cfg.cniPackage}/bin/calico $out/bin/calico
    ln -s ${cfg.cniPackage}/bin/calico $out/bin/calico-ipam
  '';

  crds =
    if crdsSha256 == null then
      null
    else
      pkgs.fetchurl {
        name = "calico-${version}-crds.yaml";
        url = "https://raw.githubusercontent.com/projectcalico/calico/v${version}/manifests/crds.yaml";
        sha256 = crdsSha256;
      };

  apply = "kubectl apply --server-side --force-conflicts --field-manager=kubepki";
in
{
  options.services.kubepki.calico = {
    enable = mkOption {
      type = types.bool;
      default = top.enable;
      defaultText = lib.literalExpression "config.services.kubepki.enable";
      description = ''
        Whether to install Calico's CNI on this node (and, on a control-plane
        node, apply Calico's resources), as `[calico]` in the inventory says.
      '';
    };

    cniPackage = mkOption {
      type = types.package;
      default = pkgs.calico-cni-plugin;
      defaultText = lib.literalExpression "pkgs.calico-cni-plugin";
      description = ''
        The Calico CNI plugin; its `bin/calico` is installed as both `calico`
        and `calico-ipam` in the CNI bin dir. It should match `calico.version`
        in the inventory.
      '';
    };

    kubectlPackage = mkOption {
      type = types.package;
      default = pkgs.kubectl;
      defaultText = lib.literalExpression "pkgs.kubectl";
      description = "The kubectl that applies the CRDs and manifests on control-plane nodes.";
    };

    applyManifests = mkOption {
      type = types.bool;
      default = thisNode.isControlPlane;
      defaultText = lib.literalMD "whether this node has the `control-plane` role in the inventory";
      description = ''
        Whether this node applies Calico's CRDs and the rendered manifests to
        the cluster (a `kubepki-calico-apply` oneshot). Applying from several
        control planes is harmless: server-side apply with one field manager.
      '';
    };

    kubeconfig = mkOption {
      type = types.str;
      default = top.material.kubeconfig "super-admin";
      defaultText = lib.literalExpression ''config.services.kubepki.material.kubeconfig "super-admin"'';
      description = ''
        The kubeconfig the apply oneshot uses: the break-glass super-admin one
        activation installs (`/run/kubepki/current/super-admin.kubeconfig`),
        because the CRDs and RBAC have to exist before any narrower identity
        could be granted.
      '';
    };

    manifests = mkOption {
      type = types.package;
      readOnly = true;
      default = rendered;
      defaultText = lib.literalMD "`kubepki calico --out` run on the inventory at build time";
      description = "The rendered manifests (one YAML file per concern) and `10-calico.conflist`.";
    };

    crds = mkOption {
      type = types.nullOr types.package;
      readOnly = true;
      default = crds;
      defaultText = lib.literalMD "`crds.yaml` of the inventory's `calico.version`, pinned by `calico.crds_sha256`";
      description = "Calico's CRDs as released, or null when the inventory pins no hash.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      services.kubernetes.kubelet.cni.packages = [ cniPlugins ];
      services.kubernetes.kubelet.cni.configDir = cniConfig;
    }

    (mkIf cfg.applyManifests {
      assertions = [
        {
          assertion = crdsSha256 != null;
          message = "${toString top.inventory} has no `calico.crds_sha256`, so the Calico CRDs cannot be fetched and pinned. Fix: set it to the sha256sum of https://raw.githubusercontent.com/projectcalico/calico/v${version}/manifests/crds.yaml, or set services.kubepki.calico.applyManifests = false and apply Calico yourself.";
        }
      ];
    })

    (mkIf (cfg.applyManifests && crds != null) {

      systemd.services.kubepki-calico-apply = {
        description = "Apply Calico ${version} CRDs and kubepki's Calico manifests";
        wantedBy = [ "kubernetes.target" ];
        after = [ "kube-apiserver.service" ];
        path = [ cfg.kubectlPackage ];
        environment.KUBECONFIG = cfg.kubeconfig;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          Restart = "on-failure";
          RestartSec = "10s";
        };
        script = ''
          until kubectl get --raw /readyz >/dev/null 2>&1; do sleep 2; done
          ${apply} -f ${crds}
          kubectl wait --for condition=established --timeout=120s \
            crd/ippools.crd.projectcalico.org crd/felixconfigurations.crd.projectcalico.org
          ${apply} -f ${rendered}
        '';
      };
    })
  ]);
}

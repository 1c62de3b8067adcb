# services.kubepki: install this node's certificates and keys from the sealed
# bundle in the repository, at every activation (nixos-rebuild and boot).
#
# The module only describes; the work is one `kubepki activate` run, which
# decrypts everything with the host's SSH key, verifies each certificate
# against the CA pins from cluster.toml, writes a new generation under
# `targetDir` and flips `<targetDir>/current` to it, or leaves the old one in
# place and fails. Units whose material changed are queued for restart
# (activation mode) or restarted with `systemctl try-restart` (systemd mode).
#
# It also exposes, read-only, the inventory helper (`cluster`) and this node's
# installed paths (`material`) so the role modules (control-plane, worker,
# calico, cache) never type a path, a CIDR or a name. It does not configure
# Kubernetes itself: that is modules/kubernetes/*.nix.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.kubepki;
  inherit (lib)
    concatMapStrings
    escapeShellArg
    hasPrefix
    mkIf
    mkMerge
    mkOption
    optionalString
    types
    ;

  cluster = import ../nix/inventory.nix { inherit lib; } cfg.inventory;
  bundle = import ../nix/bundle.nix { inherit lib; } cfg.bundle;
  material = bundle.forNode {
    node = cfg.nodeName;
    inherit (cfg) targetDir;
  };

  # One --pin per accepted fingerprint; during a CA rotation an authority has two.
  pinArgs = lib.concatLists (
    lib.mapAttrsToList (authority: map (fp: "${authority}=${fp}")) cluster.pins
  );
  inStore = p: hasPrefix "${builtins.storeDir}/" (toString p);

  activate =
    extra:
    "${cfg.package}/bin/kubepki activate"
    + " --bundle ${escapeShellArg "${cfg.bundle}"}"
    + " --node ${escapeShellArg cfg.nodeName}"
    + concatMapStrings (p: " --pin ${escapeShellArg p}") pinArgs
    + concatMapStrings (i: " --identity ${escapeShellArg i}") cfg.identityPaths
    + " --target ${escapeShellArg cfg.targetDir}"
    + " --keep ${toString cfg.keepGenerations}"
    + " --renew-before-days ${toString cluster.spec.pki.renew_before_days}"
    + optionalString (cfg.metricsDir != null) " --metrics-dir ${escapeShellArg cfg.metricsDir}"
    + extra;
in
{
  options.services.kubepki = {
    enable = lib.mkEnableOption "installing this node's Kubernetes PKI from the kubepki bundle at activation";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../nix/package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage <kubepki>/nix/package.nix { }";
      description = "The kubepki package whose `kubepki activate` installs the material.";
    };

    inventory = mkOption {
      type = types.path;
      example = lib.literalExpression "./hosts/cluster.toml";
      description = ''
        The cluster inventory, `hosts/cluster.toml`. Node names, roles,
        addresses, CIDRs, MTUs and the CA pins are all read from it with
        `builtins.fromTOML`; nothing is repeated in Nix.
      '';
    };

    bundle = mkOption {
      type = types.path;
      default = cluster.bundleDir;
      defaultText = lib.literalMD "the `pki.bundle` folder next to `inventory` (`hosts/pki`)";
      description = ''
        The sealed bundle written by `kubepki recreate` (certificates, age-sealed
        keys and `manifest.json`). It is copied to the Nix store as is; it holds
        no plaintext key.
      '';
    };

    nodeName = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = lib.literalExpression "config.networking.hostName";
      description = "This host's `[[nodes]] name` in the inventory.";
    };

    identityPaths = mkOption {
      type = types.listOf types.str;
      default = map (k: k.path) (
        builtins.filter (k: k.type == "ed25519" || k.type == "rsa") config.services.openssh.hostKeys
      );
      defaultText = lib.literalExpression ''map (k: k.path) (filter (k: k.type == "ed25519" || k.type == "rsa") config.services.openssh.hostKeys)'';
      description = ''
        SSH private keys `kubepki activate` tries to decrypt with (ed25519 and
        RSA host keys by default). They must live outside the Nix store; the
        module refuses a store path.
      '';
    };

    targetDir = mkOption {
      type = types.str;
      default = "/run/kubepki";
      description = ''
        Where generations are written (`<targetDir>/generations/<n>/`) and
        `<targetDir>/current` points to the live one. Keep it on a RAM file
        system such as /run so decrypted keys never reach a disk.
      '';
    };

    keepGenerations = mkOption {
      type = types.ints.between 0 100;
      default = 3;
      description = "How many previous generations to keep besides the live one, for rollback.";
    };

    mode = mkOption {
      type = types.enum [
        "activation"
        "systemd"
      ];
      default =
        if (config.systemd.sysusers.enable or false) || (config.services.userborn.enable or false) then
          "systemd"
        else
          "activation";
      defaultText = lib.literalMD ''`"systemd"` when systemd-sysusers or userborn create the users, else `"activation"`'';
      description = ''
        `activation`: a `system.activationScripts` snippet after `users`,
        `groups` and `specialfs`; changed units are written to the activation
        restart list so `switch-to-configuration` restarts them.
        `systemd`: a `kubepki-activate.service` oneshot in `sysinit.target`
        (for hosts without the `users` activation script); it restarts
        changed units itself.
      '';
    };

    metricsDir = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/prometheus-node-exporter-text-files";
      description = "If set, `kubepki activate` writes a node-exporter textfile with certificate expiry there.";
    };

    cluster = mkOption {
      type = types.raw;
      readOnly = true;
      default = cluster;
      defaultText = lib.literalMD "`import nix/inventory.nix { inherit lib; } inventory`";
      description = "The inventory as read by nix/inventory.nix (nodes, roles, primary IPs, API URL, CIDRs, pod MTU), for the role modules.";
    };

    material = mkOption {
      type = types.raw;
      readOnly = true;
      default = material;
      defaultText = lib.literalMD "this node's installed paths from the bundle manifest (nix/bundle.nix)";
      description = ''
        This node's files once installed: `material.file "apiserver" "certificate"`,
        `material.kubeconfig "kubelet"`, `material.units`.
      '';
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions =
        map (p: {
          assertion = !(inStore p);
          message = "services.kubepki.identityPaths: ${p} is in the Nix store, where every user can read it. Fix: point it at the host key on disk, e.g. /etc/ssh/ssh_host_ed25519_key.";
        }) cfg.identityPaths
        ++ [
          {
            assertion = cfg.identityPaths != [ ];
            message = "services.kubepki.identityPaths is empty, so nothing can decrypt this node's keys. Fix: enable services.openssh (its host keys are the default) or list the SSH private keys the bundle is sealed to.";
          }
          {
            assertion = !(inStore cfg.targetDir);
            message = "services.kubepki.targetDir ${cfg.targetDir} is in the Nix store. Fix: use a path on a RAM file system such as /run/kubepki.";
          }
          {
            assertion = pinArgs != [ ];
            message = "${toString cfg.inventory} has no [pki.pins], so activation could not tell a genuine CA from a forged one. Fix: run `nix run .#certs-recreate`, which records them, and commit.";
          }
          {
            assertion = bundle.cluster == cluster.cluster.name;
            message = "The bundle in ${toString cfg.bundle} is for cluster `${bundle.cluster}` but ${toString cfg.inventory} names `${cluster.cluster.name}`. Fix: point services.kubepki.bundle at this cluster's hosts/pki.";
          }
        ];

      environment.systemPackages = [ cfg.package ];
    }

    (mkIf (cfg.mode == "activation") {
      system.activationScripts.kubepki = {
        deps = [
          "users"
          "groups"
          "specialfs"
        ];
        # `nixos-rebuild dry-activate` shows what would change and touches nothing.
        supportsDryActivation = true;
        # A failure leaves the previous generation live and marks the activation failed.
        text = ''
          if [ "''${NIXOS_ACTION:-}" = dry-activate ]; then
            ${activate " --dry-run"}
          else
            ${activate " --restart-list /run/nixos/activation-restart-list"}
          fi
        '';
      };
    })

    (mkIf (cfg.mode == "systemd") {
      systemd.services.kubepki-activate = {
        description = "Install this node's Kubernetes certificates and keys (kubepki)";
        wantedBy = [ "sysinit.target" ];
        before = [ "sysinit.target" ];
        after = [
          "systemd-sysusers.service"
          "userborn.service"
          "local-fs.target"
        ];
        # Re-run at switch when the bundle or the pins change.
        restartTriggers = [
          "${cfg.bundle}"
          (builtins.toJSON cluster.pins)
        ];
        unitConfig = {
          DefaultDependencies = false;
          RequiresMountsFor = cfg.identityPaths;
        };
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = activate " --systemd";
        };
      };
    })
  ]);
}

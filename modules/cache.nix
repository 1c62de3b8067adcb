# The cluster's signed Nix binary cache, on every host: substitute from the
# cache CI fills, trust only the cluster's signing key, keep signatures required.
#
# The URL and the public key are read from the inventory's `[cache]` table
# (`services.kubepki.inventory`, written by `kubepki cache-key`), so they are
# typed once. The module adds them next to cache.nixos.org and refuses a
# configuration that sets `nix.settings.require-sigs = false`: with it,
# whoever can write the bucket runs code as root on this host.
#
# It does not push anything (that is .github/workflows/cache.yml) and does not
# create AWS credentials: on EC2 the nix-daemon uses the instance profile; on
# other hosts point `awsCredentialsFile` at a credentials file outside the
# store, or serve the bucket over https (see docs/cache.md).
{
  config,
  lib,
  options,
  ...
}:
let
  inherit (lib)
    hasPrefix
    literalMD
    mkIf
    mkOption
    types
    ;
  cfg = config.services.kubepki.cache;

  # The inventory's [cache] table, or {} when there is no inventory or no table.
  hasInventory = options.services.kubepki.inventory.isDefined or false;
  inventory = config.services.kubepki.inventory;
  fromInventory =
    if hasInventory then (builtins.fromTOML (builtins.readFile inventory)).cache or { } else { };

  # `name:base64(32 bytes)`: 43 base64 digits and one `=`.
  isPublicKey = key: builtins.match "[A-Za-z0-9._-]+:[A-Za-z0-9+/]{43}=" key != null;
  inStore = p: hasPrefix "${builtins.storeDir}/" (toString p);
  requireSigs = config.nix.settings.require-sigs or true;
in
{
  options.services.kubepki.cache = {
    enable = mkOption {
      type = types.bool;
      default = fromInventory ? url && fromInventory ? public_key;
      defaultText = literalMD "`true` when the inventory's `[cache]` has both `url` and `public_key`";
      description = ''
        Substitute from the cluster's binary cache and trust its signing key.
        On by default once `kubepki cache-key --url …` has recorded both in
        the inventory.
      '';
    };

    url = mkOption {
      type = types.nullOr types.str;
      readOnly = true;
      default = fromInventory.url or null;
      defaultText = literalMD "`cache.url` from the inventory";
      description = ''
        The substituter URL, e.g. `s3://ducksnest-cache?region=ap-northeast-2`.
        Read-only: change `cache.url` in the inventory, the one place CI reads it too.
      '';
    };

    publicKey = mkOption {
      type = types.nullOr types.str;
      readOnly = true;
      default = fromInventory.public_key or null;
      defaultText = literalMD "`cache.public_key` from the inventory";
      description = ''
        The key (`name:base64`) every path from the cache must be signed with.
        Read-only: `kubepki cache-key` writes it into the inventory.
      '';
    };

    awsCredentialsFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/nix-cache/aws-credentials";
      description = ''
        An AWS shared-credentials file the nix-daemon reads the S3 bucket with
        (read-only keys: s3:GetObject, s3:ListBucket, s3:GetBucketLocation).
        Leave unset on EC2, where the instance profile is used. Must not be in
        the Nix store, which every user can read.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.url != null && cfg.publicKey != null;
        message = "services.kubepki.cache is enabled but ${toString inventory} lacks `cache.url` or `cache.public_key`. Fix: run `kubepki cache-key --url s3://BUCKET?region=REGION` and commit, or set services.kubepki.cache.enable = false.";
      }
      {
        assertion = cfg.publicKey == null || isPublicKey cfg.publicKey;
        message = "${toString inventory}: `cache.public_key` is not a Nix public key (name:base64 of 32 bytes). Fix: restore it from git or run `kubepki cache-key --rotate`.";
      }
      {
        assertion = requireSigs != false;
        message = "nix.settings.require-sigs = false lets whoever can write ${toString cfg.url} run code as root on this host. Fix: remove that setting; the cluster cache is signed with ${toString cfg.publicKey}.";
      }
      {
        assertion = cfg.awsCredentialsFile == null || !(inStore cfg.awsCredentialsFile);
        message = "services.kubepki.cache.awsCredentialsFile ${toString cfg.awsCredentialsFile} is in the Nix store, where every user can read it. Fix: keep it on disk, e.g. /var/lib/nix-cache/aws-credentials.";
      }
    ];

    # Lists merge with nixpkgs' own (cache.nixos.org and its key); nothing is replaced.
    nix.settings.substituters = lib.optional (cfg.url != null) cfg.url;
    nix.settings.trusted-public-keys = lib.optional (cfg.publicKey != null) cfg.publicKey;

    systemd.services.nix-daemon.environment = mkIf (cfg.awsCredentialsFile != null) {
      AWS_SHARED_CREDENTIALS_FILE = cfg.awsCredentialsFile;
    };
  };
}

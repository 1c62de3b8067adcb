//! Everything that can stop an activation, one variant per failure.
//!
//! Each message is a sentence that names the file (a bundle path such as
//! `nodes/laptop-ultra/kubelet-client.key.age`, an identity file, or a path
//! under the target) and says what to do next. Messages never contain key
//! material. Any error returned before the install step means nothing on the
//! node changed: the current generation keeps serving.

use std::io;
use std::path::PathBuf;

use crate::plan::Authority;

#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error(
        "cannot read the bundle manifest {path}: {source}. Fix: pass --bundle the folder that holds manifest.json (hosts/pki in the repository)"
    )]
    ManifestUnreadable { path: PathBuf, source: io::Error },
    #[error(
        "the bundle manifest {path} is not valid: {reason}. Fix: regenerate it with `kubepki recreate` and commit it"
    )]
    ManifestInvalid { path: PathBuf, reason: String },
    #[error(
        "the bundle manifest {path} has format {found}, this kubepki reads format {supported}. Fix: deploy a kubepki that matches the one that wrote the bundle"
    )]
    ManifestFormat {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error(
        "node `{node}` is not in the bundle manifest {path} (it has: {known}). Fix: check --node, or add the node to hosts/cluster.toml and run `kubepki recreate`"
    )]
    NodeNotInBundle {
        node: String,
        path: PathBuf,
        known: String,
    },
    #[error(
        "{file}: the manifest gives no SHA-256 for this bundle file. Fix: regenerate the bundle with `kubepki recreate`"
    )]
    NotInManifest { file: String },
    #[error(
        "{file}: cannot read it from the bundle ({source}). Fix: restore the bundle from git (`git checkout -- hosts/pki`) or run `kubepki recreate`"
    )]
    BundleFileUnreadable { file: String, source: io::Error },
    #[error(
        "{file}: its SHA-256 is {actual} but the manifest says {expected} (the file is {size} bytes; truncated or altered). Fix: restore the bundle from git (`git checkout -- hosts/pki`) or run `kubepki recreate`"
    )]
    HashMismatch {
        file: String,
        expected: String,
        actual: String,
        size: usize,
    },
    #[error(
        "identity file {path} does not exist. Fix: pass --identity with this host's SSH private key (e.g. /etc/ssh/ssh_host_ed25519_key), or generate the host key before activation"
    )]
    IdentityMissing { path: PathBuf },
    #[error(
        "no identity file found (looked for {tried}). Fix: pass --identity with this host's SSH private key"
    )]
    NoIdentity { tried: String },
    #[error(
        "identity file {path} cannot be read: {reason}. Fix: pass an unencrypted OpenSSH ed25519 or RSA private key (the host key)"
    )]
    IdentityUnreadable { path: PathBuf, reason: String },
    #[error(
        "no identity can decrypt {file} ({identities}); it is sealed to other recipients (sealed to another node?). Fix: check --node and --identity, or add this host's key to hosts/cluster.toml and run `kubepki recreate`"
    )]
    NotSealedToThisHost { file: String, identities: String },
    #[error(
        "{file} is truncated or corrupted: {reason}. Fix: restore the bundle from git (`git checkout -- hosts/pki`) or run `kubepki recreate`"
    )]
    SealedFileCorrupt { file: String, reason: String },
    #[error(
        "{file} is not a PEM {expected}: {reason}. Fix: regenerate the bundle with `kubepki recreate`"
    )]
    NotPem {
        file: String,
        expected: &'static str,
        reason: String,
    },
    #[error(
        "{file}: no CA fingerprint is pinned for the `{authority}` authority. Fix: pass --pin {authority}=sha256:<hex> with the value from [pki.pins] in hosts/cluster.toml"
    )]
    MissingPin { file: String, authority: Authority },
    #[error(
        "{file}: the `{authority}` CA certificate with fingerprint sha256:{fingerprint} (subject `{subject}`) is not pinned; the bundle may have been tampered with. Fix: if this CA is legitimate (a rotation), add its fingerprint to [pki.pins] in hosts/cluster.toml and redeploy; otherwise restore the bundle from a trusted commit"
    )]
    RogueAuthority {
        file: String,
        authority: Authority,
        fingerprint: String,
        subject: String,
    },
    #[error(
        "{file}: `{subject}` is not signed by any pinned `{authority}` CA (issuer `{issuer}`); the bundle may have been tampered with. Fix: restore the bundle from a trusted commit or re-issue with `kubepki renew`"
    )]
    NotSignedByPinnedAuthority {
        file: String,
        authority: Authority,
        subject: String,
        issuer: String,
    },
    #[error(
        "{file}: the certificate is not valid before {not_before} (now {now}); the issuing clock or this node's clock is wrong. Fix: correct the clock (timedatectl), or re-issue with `kubepki renew`"
    )]
    NotYetValid {
        file: String,
        not_before: String,
        now: String,
    },
    #[error(
        "{file}: the certificate expired at {not_after} (now {now}). Fix: run `kubepki renew` on the operator machine, commit, and redeploy"
    )]
    Expired {
        file: String,
        not_after: String,
        now: String,
    },
    #[error(
        "{file}: {what} is {found}, but this node is `{node}` (expected {expected}). Fix: check --node, or re-issue with `kubepki renew`"
    )]
    WrongNode {
        file: String,
        what: &'static str,
        found: String,
        expected: String,
        node: String,
    },
    #[error(
        "{key} does not belong to {certificate}: their public keys differ. Fix: re-issue the pair with `kubepki renew` (a half-updated bundle?)"
    )]
    KeyMismatch { key: String, certificate: String },
    #[error(
        "{file}: cannot parse the private key ({reason}). Fix: re-issue it with `kubepki renew`"
    )]
    KeyUnreadable { file: String, reason: String },
    #[error(
        "{file}: owner user `{user}` does not exist on this host. Fix: enable the service that creates it (e.g. services.kubernetes) or order activation after users and groups"
    )]
    OwnerUserMissing { file: String, user: String },
    #[error(
        "{file}: owner group `{group}` does not exist on this host. Fix: enable the service that creates it (e.g. services.kubernetes) or order activation after users and groups"
    )]
    OwnerGroupMissing { file: String, group: String },
    #[error(
        "cannot look up the account `{name}`: {source}. Fix: check NSS (/etc/nsswitch.conf) on this host"
    )]
    AccountLookup { name: String, source: io::Error },
    #[error(
        "cannot install into {path}: {source}. Fix: check that the target (--target) is writable by this user and the filesystem has room; the previous generation still serves"
    )]
    Install { path: PathBuf, source: io::Error },
    #[error(
        "cannot append to the restart list {path}: {source}. Fix: check the path given to --restart-list; the new generation is installed, restart {units} by hand"
    )]
    RestartList {
        path: PathBuf,
        units: String,
        source: io::Error,
    },
    #[error(
        "`systemctl try-restart {units}` failed: {reason}. Fix: see `journalctl -u <unit>`; the new generation is installed"
    )]
    Systemctl { units: String, reason: String },
    #[error(
        "cannot write the metrics file {path}: {source}. Fix: check --metrics-dir; the new generation is installed"
    )]
    Metrics { path: PathBuf, source: io::Error },
}

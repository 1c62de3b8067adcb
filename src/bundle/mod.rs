//! The bundle: the folder of sealed keys, certificates and `manifest.json` that lives in git.
//!
//! [`manifest`] is the format (read by activation, lifecycle and Nix);
//! [`changes`] decides, as a pure function, what a run must add, re-issue,
//! re-seal or remove; [`store`] reads, verifies and atomically replaces the
//! folder under a lock; [`reconcile`] is `kubepki recreate`, tying plan,
//! issuance, sealing and the store together. Plaintext keys never reach the
//! disk here: only sealed bytes and public material are written.
//!
//! For the other stages:
//! - read: [`Bundle::open`] (manifest only), [`Bundle::read`] (one file, digest
//!   checked), [`Bundle::verify`] (every file);
//! - decide: [`compute`] with [`ChangeOptions`] (`force`, `renew_before_days`,
//!   `signing`, `trust`) gives [`Changes`]; [`pending_changes`] does it for an inventory;
//! - act: [`recreate`] with [`RecreateOptions`]; `renew` is `force`, CA rotation
//!   is `trust` ([`TrustBundle`]: step 1 signing `old` with `new` pending, step 2 signing
//!   `new` with `[old]` also trusted, step 3 `[]`);
//! - low level: [`BundleLock`] + [`Transaction`] (`keep`, `write`, `apply`, `commit`)
//!   for any other whole-bundle rewrite.

pub mod changes;
pub mod manifest;
pub mod reconcile;
pub mod store;

pub use changes::{ChangeOptions, Changes, Reason, authority_id, compute};
pub use manifest::{
    AuthorityEntry, CertificateEntry, CertificateInputs, FileEntry, InputPart, MANIFEST_FILE,
    Manifest, PublicKeyEntry, SealedKeyEntry, TrustBundleEntry,
};
pub use reconcile::{
    Outcome, PendingCa, RecreateOptions, TrustBundle, pending_changes, record_pins, recreate,
};
pub use store::{Bundle, BundleLock, StagedFile, Transaction};

/// Something reading or writing the bundle folder could not do.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "cannot read {path}: {source}. Fix: check the bundle folder (`pki.bundle` in the inventory) exists and is readable."
    )]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "cannot write {path}: {source}. Fix: check the folder is writable and the disk is not full."
    )]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a kubepki manifest: {reason}. Fix: restore it from git (`git checkout -- {path}`)."
    )]
    BadManifest { path: String, reason: String },
    #[error(
        "{path} is not listed in the bundle manifest. Fix: run `kubepki recreate` to rebuild the bundle."
    )]
    NotInManifest { path: String },
    #[error(
        "{path} does not match the SHA-256 in manifest.json: it was changed outside kubepki. Fix: restore it from git (`git checkout -- {path}`), or run `kubepki recreate --force`."
    )]
    DigestMismatch { path: String },
    #[error(
        "the bundle is locked by another run ({holder}); lock file {path}. Fix: wait for that run to finish; if no kubepki is running, delete the lock file."
    )]
    Locked { path: String, holder: String },
    #[error(
        "the trust bundle of CA `{authority}` has no certificate with the signing fingerprint {fingerprint}. Fix: restore ca/{authority}.crt from git, or correct the signing CA."
    )]
    NoSigningCertificate {
        authority: String,
        fingerprint: String,
    },
    #[error(
        "{path} exists but has no manifest.json, so it is not a kubepki bundle; recreate would replace its files. Fix: move its files away, or set `pki.bundle` in the inventory to another folder."
    )]
    NotABundle { path: String },
    #[error("injected fault after {after} writes (test hook).")]
    InjectedFault { after: usize },
    #[error("cannot record the CA pins in the inventory: {0}")]
    Pins(#[from] crate::inventory::edit::EditError),
}

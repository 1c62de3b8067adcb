//! Issuance: turns the certificate plan into key pairs, CA certificates, leaf certificates and secrets.
//!
//! Everything here is in memory: it makes keys (ECDSA P-256/P-384 with ring,
//! RSA with the `rsa` crate), signs certificates with rcgen and renders the
//! service-account key pair and the API server's EncryptionConfiguration. It
//! never touches the filesystem and never seals: private material leaves this
//! module only inside [`zeroize::Zeroizing`] buffers, for [`crate::seal`] to
//! encrypt. It does not decide *what* to issue either; that is [`crate::plan`]
//! (the subjects) and [`crate::bundle`] (what changed since the last run).

mod authority;
mod key;
mod leaf;
mod secret;

use time::OffsetDateTime;

pub use authority::fingerprint;
pub use authority::{CaCertificate, SigningAuthority, issue_authority};
pub use key::PrivateKey;
pub use leaf::{
    IssuedCertificate, issue_leaf, issue_leaf_with_key, issue_leaves, issue_leaves_keeping,
};
pub use secret::{
    IssuedSecret, ServiceAccountKey, encryption_config, issue_secret, service_account_key,
};

/// Something issuance could not do.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(
        "cannot generate a {algorithm} key: {reason}. Fix: choose another `pki.algorithm` in the inventory."
    )]
    KeyGeneration { algorithm: String, reason: String },
    #[error(
        "the key of CA `{authority}` cannot be used for signing: {reason}. Fix: check that the sealed CA key belongs to ca/{authority}.crt, or remove the CA from the bundle to make a new one."
    )]
    BadAuthorityKey { authority: String, reason: String },
    #[error(
        "the CA certificate of `{authority}` cannot be read: {reason}. Fix: restore ca/{authority}.crt from git, or remove it to make a new CA."
    )]
    BadAuthorityCertificate { authority: String, reason: String },
    #[error(
        "cannot sign certificate `{id}`: {reason}. Fix: check its names in the inventory (SANs must be valid DNS names or IP addresses)."
    )]
    Signing { id: String, reason: String },
    #[error(
        "no signing CA `{authority}` was given to issue `{id}`. Fix: this is a bug in kubepki; please report it."
    )]
    MissingAuthority { authority: String, id: String },
}

/// The validity window of a new certificate: back-dated 5 minutes against clock skew, `days` long.
pub fn validity(now: OffsetDateTime, days: u32) -> (OffsetDateTime, OffsetDateTime) {
    (
        now - time::Duration::minutes(5),
        now + time::Duration::days(i64::from(days)),
    )
}

/// A random positive 16-byte serial number (the top bit clear, the next one set so it keeps 16 bytes).
pub fn random_serial() -> [u8; 16] {
    use rand::RngCore;
    let mut serial = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x40;
    serial
}

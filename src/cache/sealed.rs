//! The sealed signing key: the secret half encrypted with age to the operators and CI.
//!
//! `kubepki cache-key` seals the key to every operator recipient and every
//! `cache.ci_recipients` entry and commits only the ciphertext; `kubepki cache
//! secret` opens it with an operator's or CI's identity. Encryption and
//! identities are [`crate::seal`]'s, so the file is the same binary age as the
//! PKI bundle and the Go `age -d -i KEY` opens it too. This module only picks
//! the recipients' age form and reads the file; it does not choose who the
//! recipients are or where the file lives (see [`super`]).

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use zeroize::Zeroizing;

use crate::inventory::{Recipient, RecipientKind};
use crate::seal::{Identities, SealError};

/// What can go wrong sealing or opening the signing key.
#[derive(Debug, thiserror::Error)]
pub enum SealedKeyError {
    #[error(
        "there is no one to seal the cache signing key to. Fix: list an operator in `[[operators]]` or a key in `cache.ci_recipients`."
    )]
    NoRecipients,
    #[error(
        "cannot encrypt the cache signing key to `{recipient}`: {reason}. Fix: check that recipient in the inventory."
    )]
    Recipient { recipient: String, reason: String },
    #[error(
        "cannot read the sealed cache key {path}: {reason}. Fix: run `kubepki cache-key` first, or set `cache.secret_key_file`."
    )]
    SealedUnreadable { path: PathBuf, reason: String },
    #[error("{0}")]
    Seal(#[from] SealError),
}

/// An age recipient in the form the age crate encrypts to.
enum AgeRecipient {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
}

impl AgeRecipient {
    fn as_dyn(&self) -> &dyn age::Recipient {
        match self {
            AgeRecipient::X25519(r) => r,
            AgeRecipient::Ssh(r) => r,
        }
    }
}

/// Encrypts `secret` to every recipient; returns the binary age file.
pub fn seal(secret: &[u8], recipients: &[Recipient]) -> Result<Vec<u8>, SealedKeyError> {
    if recipients.is_empty() {
        return Err(SealedKeyError::NoRecipients);
    }
    let mut parsed = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let fail = |reason: String| SealedKeyError::Recipient {
            recipient: recipient.fingerprint(),
            reason,
        };
        parsed.push(match recipient.kind {
            RecipientKind::Age => AgeRecipient::X25519(
                age::x25519::Recipient::from_str(&recipient.text)
                    .map_err(|e| fail(e.to_string()))?,
            ),
            RecipientKind::SshEd25519 | RecipientKind::SshRsa { .. } => AgeRecipient::Ssh(
                age::ssh::Recipient::from_str(&recipient.text)
                    .map_err(|e| fail(format!("{e:?}")))?,
            ),
        });
    }
    Ok(crate::seal::encrypt(
        secret,
        parsed.iter().map(AgeRecipient::as_dyn),
        "the cache signing key",
    )?)
}

/// Loads identities: the files given, or `crate::seal`'s defaults ($AGE_IDENTITY, ~/.ssh/id_ed25519, …).
pub fn read_identities(paths: &[PathBuf]) -> Result<Identities, SealedKeyError> {
    Ok(Identities::load_or_default(paths)?)
}

/// Decrypts the sealed file with any of `identities`; the plaintext stays in a zeroizing buffer.
pub fn open(path: &Path, identities: &Identities) -> Result<Zeroizing<Vec<u8>>, SealedKeyError> {
    let sealed = std::fs::read(path).map_err(|e| SealedKeyError::SealedUnreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(crate::seal::unseal_named(
        &sealed,
        identities,
        &path.display().to_string(),
    )?)
}

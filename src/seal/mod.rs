//! Sealing: age encryption of every private key to exactly the nodes that need it, plus the operators.
//!
//! [`Keyring`] parses each node host key and operator recipient of the
//! inventory once; [`Keyring::recipients_for`] gives the [`RecipientSet`] of a
//! key's holders, which seals plaintext into binary (not armored) age that the
//! Go `age` CLI decrypts with the matching SSH private key. [`Identities`] and
//! [`unseal`] go the other way, for re-sealing, `kubeconfig admin` and node
//! activation. This module never writes files and never decides who holds a
//! key: the holders come from [`crate::plan`]. SSH recipients are not
//! anonymous: an age file reveals a 4-byte tag of each recipient key.

mod identity;
mod recipients;

pub use identity::{Identities, default_identity_paths};
pub use recipients::{Keyring, RecipientSet, RecipientSummary};

use std::io::{Read, Write};

use zeroize::Zeroizing;

/// Something sealing or unsealing could not do.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "recipient of {owner} cannot be used by age: {reason}. Fix: use an ssh-ed25519, ssh-rsa (2048-4096 bits) or age1 key."
    )]
    BadRecipient { owner: String, reason: String },
    #[error(
        "node `{node}` holds a key but has no host key in the inventory. Fix: set `host_key` for node `{node}` in the inventory."
    )]
    UnknownNode { node: String },
    #[error(
        "`{what}` would be sealed to nobody. Fix: add an `[[operators]]` entry with at least one recipient to the inventory."
    )]
    NoRecipients { what: String },
    #[error("cannot encrypt `{what}` with age: {reason}.")]
    Encrypt { what: String, reason: String },
    #[error(
        "cannot read identity {path}: {source}. Fix: pass an existing private key with `-i FILE`."
    )]
    ReadIdentity {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} is not an identity age can use: {reason}. Fix: pass an OpenSSH ed25519/RSA private key or an age identity file (AGE-SECRET-KEY-1...) with `-i FILE`."
    )]
    BadIdentity { path: String, reason: String },
    #[error(
        "{path} is protected by a passphrase and there is no terminal to ask for it. Fix: run the command in a terminal, or pass an unencrypted identity with `-i FILE`."
    )]
    PassphraseNeeded { path: String },
    #[error(
        "the passphrase for {path} is wrong. Fix: try again, or pass another identity with `-i FILE`."
    )]
    WrongPassphrase { path: String },
    #[error(
        "no identity was given or found (tried {tried}). Fix: pass the operator's private key with `-i FILE` (an SSH key or an age identity file), or set $AGE_IDENTITY."
    )]
    NoIdentities { tried: String },
    #[error(
        "none of the identities ({identities}) can decrypt {what}. Fix: pass the private key of a recipient of that file with `-i FILE` (an operator key in the inventory)."
    )]
    NoMatchingIdentity { what: String, identities: String },
    #[error(
        "{what} is not a valid age file: {reason}. Fix: restore it from git (`git checkout -- {what}`)."
    )]
    Corrupt { what: String, reason: String },
}

/// Decrypts an age file with the first identity that matches; `what` names it in errors.
pub fn unseal(ciphertext: &[u8], identities: &Identities) -> Result<Zeroizing<Vec<u8>>, SealError> {
    unseal_named(ciphertext, identities, "the sealed file")
}

/// [`unseal`] with the file's name for the error message.
pub fn unseal_named(
    ciphertext: &[u8],
    identities: &Identities,
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(|e| SealError::Corrupt {
        what: what.to_string(),
        reason: e.to_string(),
    })?;
    let mut reader = decryptor.decrypt(identities.iter()).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => SealError::NoMatchingIdentity {
            what: what.to_string(),
            identities: identities.describe(),
        },
        other => SealError::Corrupt {
            what: what.to_string(),
            reason: other.to_string(),
        },
    })?;
    let mut plaintext = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    reader
        .read_to_end(&mut plaintext)
        .map_err(|e| SealError::Corrupt {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
    Ok(plaintext)
}

/// Encrypts `plaintext` to `recipients` as binary age; `what` names it in errors.
pub(crate) fn encrypt<'a>(
    plaintext: &[u8],
    recipients: impl Iterator<Item = &'a dyn age::Recipient>,
    what: &str,
) -> Result<Vec<u8>, SealError> {
    let failed = |reason: String| SealError::Encrypt {
        what: what.to_string(),
        reason,
    };
    let encryptor =
        age::Encryptor::with_recipients(recipients).map_err(|e| failed(e.to_string()))?;
    let mut out = Vec::with_capacity(plaintext.len() + 512);
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| failed(e.to_string()))?;
    writer
        .write_all(plaintext)
        .map_err(|e| failed(e.to_string()))?;
    writer.finish().map_err(|e| failed(e.to_string()))?;
    Ok(out)
}

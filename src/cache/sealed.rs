//! The sealed signing key: the secret half encrypted with age to the operators and CI.
//!
//! `kubepki cache-key` seals the key to every operator recipient and every
//! `cache.ci_recipients` entry and commits only the ciphertext; `kubepki cache
//! secret` opens it with an operator's or CI's identity. The file is binary age,
//! so the Go `age -d -i KEY` opens it too. This module encrypts and decrypts
//! bytes held in zeroizing buffers; it does not choose the recipients or the path.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use zeroize::Zeroizing;

use crate::inventory::{Recipient, RecipientKind};

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
    #[error("cannot encrypt the cache signing key: {0}. Fix: this is a bug; report it.")]
    Encrypt(String),
    #[error(
        "cannot read the identity {path}: {reason}. Fix: pass an SSH private key or an age identity file with -i."
    )]
    IdentityUnreadable { path: PathBuf, reason: String },
    #[error(
        "the identity {path} is a passphrase-protected SSH key. Fix: pass an unencrypted copy (e.g. in a tmpfs) or an age identity."
    )]
    IdentityEncrypted { path: PathBuf },
    #[error(
        "the identity {path} is an SSH key type age cannot use. Fix: use an ed25519 or RSA key, or an age identity."
    )]
    IdentityUnsupported { path: PathBuf },
    #[error(
        "cannot read the sealed cache key {path}: {reason}. Fix: run `kubepki cache-key` first, or set `cache.secret_key_file`."
    )]
    SealedUnreadable { path: PathBuf, reason: String },
    #[error(
        "none of the identities given opens {path} ({reason}). Fix: pass the private key of an operator or CI recipient the key was sealed to."
    )]
    Decrypt { path: PathBuf, reason: String },
}

/// Encrypts `secret` to every recipient; returns the binary age file.
pub fn seal(secret: &[u8], recipients: &[Recipient]) -> Result<Vec<u8>, SealedKeyError> {
    if recipients.is_empty() {
        return Err(SealedKeyError::NoRecipients);
    }
    let mut parsed: Vec<Box<dyn age::Recipient>> = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let fail = |reason: String| SealedKeyError::Recipient {
            recipient: recipient.fingerprint(),
            reason,
        };
        match recipient.kind {
            RecipientKind::Age => parsed.push(Box::new(
                age::x25519::Recipient::from_str(&recipient.text)
                    .map_err(|e| fail(e.to_string()))?,
            )),
            RecipientKind::SshEd25519 | RecipientKind::SshRsa { .. } => parsed.push(Box::new(
                age::ssh::Recipient::from_str(&recipient.text)
                    .map_err(|e| fail(format!("{e:?}")))?,
            )),
        }
    }
    let encryptor = age::Encryptor::with_recipients(parsed.iter().map(|r| r.as_ref() as _))
        .map_err(|e| SealedKeyError::Encrypt(e.to_string()))?;
    let mut out = Vec::new();
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| SealedKeyError::Encrypt(e.to_string()))?;
    writer
        .write_all(secret)
        .and_then(|()| writer.finish().map(|_| ()))
        .map_err(|e| SealedKeyError::Encrypt(e.to_string()))?;
    Ok(out)
}

/// Reads identities from files: OpenSSH private keys (ed25519, RSA) or age identity files.
pub fn read_identities(paths: &[PathBuf]) -> Result<Vec<Box<dyn age::Identity>>, SealedKeyError> {
    let mut identities: Vec<Box<dyn age::Identity>> = Vec::new();
    for path in paths {
        let unreadable = |reason: String| SealedKeyError::IdentityUnreadable {
            path: path.clone(),
            reason,
        };
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| unreadable(e.to_string()))?);
        let is_ssh = bytes
            .windows(b"PRIVATE KEY-----".len())
            .any(|w| w == b"PRIVATE KEY-----");
        if is_ssh {
            let identity =
                age::ssh::Identity::from_buffer(&bytes[..], Some(path.display().to_string()))
                    .map_err(|e| unreadable(e.to_string()))?;
            match identity {
                age::ssh::Identity::Unencrypted(_) => identities.push(Box::new(identity)),
                age::ssh::Identity::Encrypted(_) => {
                    return Err(SealedKeyError::IdentityEncrypted { path: path.clone() });
                }
                age::ssh::Identity::Unsupported(_) => {
                    return Err(SealedKeyError::IdentityUnsupported { path: path.clone() });
                }
            }
        } else {
            let file = age::IdentityFile::from_buffer(&bytes[..])
                .map_err(|e| unreadable(e.to_string()))?;
            for identity in file
                .into_identities()
                .map_err(|e| unreadable(e.to_string()))?
            {
                identities.push(identity);
            }
        }
    }
    Ok(identities)
}

/// Decrypts a sealed file with any of `identities`; the plaintext stays in a zeroizing buffer.
pub fn open(
    path: &Path,
    identities: &[Box<dyn age::Identity>],
) -> Result<Zeroizing<Vec<u8>>, SealedKeyError> {
    let sealed = std::fs::read(path).map_err(|e| SealedKeyError::SealedUnreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let fail = |reason: String| SealedKeyError::Decrypt {
        path: path.to_path_buf(),
        reason,
    };
    let decryptor = age::Decryptor::new(&sealed[..]).map_err(|e| fail(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as _))
        .map_err(|e| fail(e.to_string()))?;
    // Room for any signing key up front, so reading never reallocates and leaves a copy behind.
    let mut plain = Zeroizing::new(Vec::with_capacity(4096));
    reader
        .read_to_end(&mut plain)
        .map_err(|e| fail(e.to_string()))?;
    Ok(plain)
}

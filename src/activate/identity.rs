//! The host's age identities: its SSH host private keys, read once per activation.
//!
//! Defaults to `/etc/ssh/ssh_host_ed25519_key` and `/etc/ssh/ssh_host_rsa_key`,
//! whichever exist, as agenix and sops-nix do. An identity named explicitly
//! must exist. Passphrase-protected keys are refused: activation runs
//! unattended. This module only loads keys; decrypting is [`super::unseal`].

use std::fs;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::ActivateError;

/// Host keys tried when no `--identity` is given.
pub const DEFAULT_IDENTITIES: [&str; 2] = [
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_rsa_key",
];

/// One loaded host key.
pub struct HostIdentity {
    pub path: PathBuf,
    pub key: age::ssh::Identity,
}

/// Loads the named identities, or the default host keys that exist when none is named.
pub fn load(explicit: &[PathBuf]) -> Result<Vec<HostIdentity>, ActivateError> {
    let paths: Vec<PathBuf> = if explicit.is_empty() {
        let found: Vec<PathBuf> = DEFAULT_IDENTITIES
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect();
        if found.is_empty() {
            return Err(ActivateError::NoIdentity {
                tried: DEFAULT_IDENTITIES.join(", "),
            });
        }
        found
    } else {
        explicit.to_vec()
    };
    paths.iter().map(|p| load_one(p)).collect()
}

fn load_one(path: &Path) -> Result<HostIdentity, ActivateError> {
    let bytes = Zeroizing::new(fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ActivateError::IdentityMissing {
                path: path.to_path_buf(),
            }
        } else {
            ActivateError::IdentityUnreadable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        }
    })?);
    let unreadable = |reason: &str| ActivateError::IdentityUnreadable {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let key = age::ssh::Identity::from_buffer(&bytes[..], Some(path.display().to_string()))
        .map_err(|e| unreadable(&e.to_string()))?;
    match &key {
        age::ssh::Identity::Unencrypted(_) => Ok(HostIdentity {
            path: path.to_path_buf(),
            key,
        }),
        age::ssh::Identity::Encrypted(_) => Err(unreadable(
            "it is passphrase-protected, and activation cannot ask for a passphrase",
        )),
        age::ssh::Identity::Unsupported(_) => Err(unreadable(
            "age supports only ssh-ed25519 and ssh-rsa keys (not ecdsa or sk-*)",
        )),
    }
}

/// The identity files, for messages.
pub fn describe(identities: &[HostIdentity]) -> String {
    let names: Vec<String> = identities
        .iter()
        .map(|i| i.path.display().to_string())
        .collect();
    format!("tried {}", names.join(", "))
}

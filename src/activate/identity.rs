//! The host's age identities: its SSH host private keys, read once per activation.
//!
//! Defaults to `/etc/ssh/ssh_host_ed25519_key` and `/etc/ssh/ssh_host_rsa_key`,
//! whichever exist, as agenix and sops-nix do; an identity named explicitly
//! must exist. Loading itself is the sealing stage's [`crate::seal::Identities`]
//! (OpenSSH ed25519/RSA keys and age identity files); this module only picks
//! the files and words the errors for a node. Decrypting is [`super::unseal`].

use std::path::PathBuf;

use super::ActivateError;
use crate::seal::{Identities, SealError};

/// Host keys tried when no `--identity` is given.
pub const DEFAULT_IDENTITIES: [&str; 2] =
    ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"];

/// Loads the named identities, or the default host keys that exist when none is named.
pub fn load(explicit: &[PathBuf]) -> Result<Identities, ActivateError> {
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
    if let Some(missing) = paths.iter().find(|p| !p.exists()) {
        return Err(ActivateError::IdentityMissing {
            path: missing.clone(),
        });
    }
    Identities::load(&paths).map_err(|error| {
        let (path, reason) = match error {
            SealError::ReadIdentity { path, source } => (path, source.to_string()),
            SealError::BadIdentity { path, reason } => (path, reason),
            SealError::PassphraseNeeded { path } | SealError::WrongPassphrase { path } => (
                path,
                "it is passphrase-protected, and activation cannot ask for a passphrase".into(),
            ),
            other => (paths_text(&paths), other.to_string()),
        };
        ActivateError::IdentityUnreadable {
            path: PathBuf::from(path),
            reason,
        }
    })
}

fn paths_text(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

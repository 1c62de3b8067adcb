//! Who can decrypt: node host keys and operator recipients, checked for what age supports.
//!
//! age encrypts to `age1…` X25519 keys, `ssh-ed25519` keys and `ssh-rsa` keys.
//! ECDSA and security-key (`sk-*`) SSH keys cannot be used, and RSA outside
//! 2048..=4096 bits is refused (weak below, rejected by the Rust age crate
//! above), so those are caught here, at inventory time, not halfway through sealing.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::error::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecipientKind {
    Age,
    SshEd25519,
    SshRsa { bits: usize },
}

/// A recipient string age can encrypt to, normalised (no SSH comment).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recipient {
    pub text: String,
    pub kind: RecipientKind,
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A node's SSH host public key, as read from the file the inventory names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub path: PathBuf,
    pub recipient: Recipient,
}

impl Recipient {
    /// Parses and checks one recipient; `owner` names it in errors ("node `x`", "operator `y`").
    pub fn parse(text: &str, owner: &str) -> Result<Recipient, Problem> {
        let text = text.trim();
        if text.starts_with("age1") {
            return age::x25519::Recipient::from_str(text)
                .map(|_| Recipient {
                    text: text.to_string(),
                    kind: RecipientKind::Age,
                })
                .map_err(|reason| Problem::BadRecipient {
                    owner: owner.to_string(),
                    value: shorten(text),
                    reason: reason.to_string(),
                });
        }
        let key = ssh_key::PublicKey::from_openssh(text).map_err(|e| Problem::BadRecipient {
            owner: owner.to_string(),
            value: shorten(text),
            reason: e.to_string(),
        })?;
        let kind = match key.key_data() {
            ssh_key::public::KeyData::Ed25519(_) => RecipientKind::SshEd25519,
            ssh_key::public::KeyData::Rsa(rsa) => {
                let bits = mpint_bits(rsa.n.as_positive_bytes().unwrap_or_default());
                if !(2048..=4096).contains(&bits) {
                    return Err(Problem::RsaKeySize {
                        owner: owner.to_string(),
                        bits,
                    });
                }
                RecipientKind::SshRsa { bits }
            }
            _ => {
                return Err(Problem::UnsupportedKeyType {
                    owner: owner.to_string(),
                    algorithm: key.algorithm().as_str().to_string(),
                });
            }
        };
        let mut bare = key.clone();
        bare.set_comment("");
        let normalised = bare.to_openssh().map_err(|e| Problem::BadRecipient {
            owner: owner.to_string(),
            value: shorten(text),
            reason: e.to_string(),
        })?;
        let normalised = normalised.trim().to_string();
        // The age crate has its own SSH parser; make sure it agrees before we rely on it.
        age::ssh::Recipient::from_str(&normalised).map_err(|e| Problem::BadRecipient {
            owner: owner.to_string(),
            value: shorten(text),
            reason: format!("{e:?}"),
        })?;
        Ok(Recipient {
            text: normalised,
            kind,
        })
    }

    /// A short stable name for manifests and messages: the age key, or the SSH SHA-256 fingerprint.
    pub fn fingerprint(&self) -> String {
        match self.kind {
            RecipientKind::Age => self.text.clone(),
            _ => ssh_key::PublicKey::from_openssh(&self.text)
                .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256).to_string())
                .unwrap_or_else(|_| self.text.clone()),
        }
    }
}

fn mpint_bits(bytes: &[u8]) -> usize {
    match bytes.iter().position(|b| *b != 0) {
        Some(first) => (bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize,
        None => 0,
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 40 {
        let head: String = text.chars().take(37).collect();
        format!("{head}...")
    } else {
        text.to_string()
    }
}

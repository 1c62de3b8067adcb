//! Identities to unseal with: OpenSSH private keys (ed25519, RSA) and age identity files.
//!
//! A passphrase-protected OpenSSH key is decrypted once, at load time, after
//! asking for the passphrase on the terminal (`/dev/tty`, echo off); without
//! a terminal loading fails with a clear error instead of hanging. Decrypted
//! key text only lives in zeroizing buffers. This module does not search for
//! keys beyond [`default_identity_paths`].

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::SealError;

/// Loaded identities, tried in order.
pub struct Identities {
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    sources: Vec<String>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

/// The identities used when none is given: `$AGE_IDENTITY`, `~/.ssh/id_ed25519`,
/// `~/.ssh/id_rsa` and `~/.config/age/keys.txt`, those that exist.
pub fn default_identity_paths() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("AGE_IDENTITY") {
        candidates.push(PathBuf::from(path));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let home = PathBuf::from(home);
        candidates.push(home.join(".ssh/id_ed25519"));
        candidates.push(home.join(".ssh/id_rsa"));
        candidates.push(home.join(".config/age/keys.txt"));
    }
    candidates.into_iter().filter(|p| p.is_file()).collect()
}

impl Identities {
    /// Loads every identity in `paths` (each an SSH private key or an age identity file).
    pub fn load(paths: &[PathBuf]) -> Result<Identities, SealError> {
        let mut out = Identities {
            identities: Vec::new(),
            sources: Vec::new(),
        };
        for path in paths {
            out.add_file(path)?;
        }
        if out.identities.is_empty() {
            return Err(SealError::NoIdentities {
                tried: if paths.is_empty() {
                    "no files".into()
                } else {
                    shown(paths)
                },
            });
        }
        Ok(out)
    }

    /// [`Identities::load`] of the given paths, or of [`default_identity_paths`] when none is given.
    pub fn load_or_default(paths: &[PathBuf]) -> Result<Identities, SealError> {
        if paths.is_empty() {
            let defaults = default_identity_paths();
            if defaults.is_empty() {
                return Err(SealError::NoIdentities {
                    tried:
                        "$AGE_IDENTITY, ~/.ssh/id_ed25519, ~/.ssh/id_rsa, ~/.config/age/keys.txt"
                            .into(),
                });
            }
            return Identities::load(&defaults);
        }
        Identities::load(paths)
    }

    /// Identity files as given, for messages.
    pub fn describe(&self) -> String {
        self.sources.join(", ")
    }

    pub fn iter(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.identities
            .iter()
            .map(|i| i.as_ref() as &dyn age::Identity)
    }

    fn add_file(&mut self, path: &Path) -> Result<(), SealError> {
        let name = path.display().to_string();
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            SealError::ReadIdentity {
                path: name.clone(),
                source,
            }
        })?);
        let bad = |reason: String| SealError::BadIdentity {
            path: name.clone(),
            reason,
        };
        if text.contains("AGE-SECRET-KEY-") {
            let file = age::IdentityFile::from_buffer(BufReader::new(text.as_bytes()))
                .map_err(|e| bad(e.to_string()))?;
            let identities = file.into_identities().map_err(|e| bad(e.to_string()))?;
            self.identities.extend(identities);
        } else {
            let text = if crate::pem::label(&text) == Some("OPENSSH PRIVATE KEY") {
                decrypt_openssh_if_needed(text, &name)?
            } else {
                text
            };
            let identity = age::ssh::Identity::from_buffer(
                BufReader::new(text.as_bytes()),
                Some(name.clone()),
            )
            .map_err(|e| bad(e.to_string()))?;
            match identity {
                age::ssh::Identity::Unencrypted(_) => {
                    self.identities.push(Box::new(identity));
                }
                age::ssh::Identity::Encrypted(_) => {
                    return Err(bad(
                        "it is an encrypted PEM key; convert it with `ssh-keygen -p -o`".into(),
                    ));
                }
                age::ssh::Identity::Unsupported(key) => {
                    return Err(bad(format!("unsupported key: {key:?}")));
                }
            }
        }
        self.sources.push(name);
        Ok(())
    }
}

/// Returns the OpenSSH key text unencrypted, asking for the passphrase on the terminal if it has one.
fn decrypt_openssh_if_needed(
    text: Zeroizing<String>,
    name: &str,
) -> Result<Zeroizing<String>, SealError> {
    let bad = |reason: String| SealError::BadIdentity {
        path: name.to_string(),
        reason,
    };
    let key = ssh_key::PrivateKey::from_openssh(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
    if !key.is_encrypted() {
        return Ok(text);
    }
    let passphrase = ask_passphrase(&format!("Passphrase for {name}: ")).ok_or_else(|| {
        SealError::PassphraseNeeded {
            path: name.to_string(),
        }
    })?;
    let decrypted = key
        .decrypt(passphrase.as_bytes())
        .map_err(|_| SealError::WrongPassphrase {
            path: name.to_string(),
        })?;
    let pem = decrypted
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Zeroizing::new(pem.to_string()))
}

/// Reads a line from `/dev/tty` with echo off; `None` when there is no terminal.
fn ask_passphrase(prompt: &str) -> Option<Zeroizing<String>> {
    use std::io::BufRead;
    use std::os::fd::AsRawFd;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd we own.
    let mut original: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut original) } != 0 {
        return None;
    }
    let mut silent = original;
    silent.c_lflag &= !libc::ECHO;
    silent.c_lflag |= libc::ECHONL;
    // SAFETY: fd is open for the lifetime of `tty`; `silent` is a valid termios.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &silent) };
    let mut writer = &tty;
    let _ = writer.write_all(prompt.as_bytes());
    let _ = writer.flush();
    let mut line = Zeroizing::new(String::new());
    let read = BufReader::new(&tty).read_line(&mut line);
    // SAFETY: restores the settings read above on the same fd.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &original) };
    read.ok()?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    Some(trimmed)
}

fn shown(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

//! Nix binary-cache signing keys: `name:base64(seed‖public)` and `name:base64(public)`.
//!
//! This is the format `nix-store --generate-binary-cache-key` and `nix key
//! generate-secret` write, read back by `nix copy --to '…?secret-key=FILE'`
//! and `nix store sign --key-file`. The secret half only ever exists in
//! zeroizing buffers ([`SecretKeyText`], `ed25519_dalek::SigningKey`); this
//! module neither stores nor seals it (see [`super::sealed`]).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// Why a key name or a key text is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the cache key name `{name}` is not usable: {reason}. Fix: use a name like `ducksnest-cache-1` (letters, digits, `.`, `-`, `_`)."
    )]
    BadName { name: String, reason: &'static str },
    #[error("{what} has no `name:` prefix. Fix: it must look like `ducksnest-cache-1:BASE64`.")]
    MissingName { what: &'static str },
    #[error("{what} is not valid base64 after `{name}:`. Fix: copy the whole key, without spaces.")]
    Base64 { what: &'static str, name: String },
    #[error(
        "{what} `{name}` decodes to {got} bytes, a Nix ed25519 {what} has {expected}. Fix: copy the whole key."
    )]
    Length {
        what: &'static str,
        name: String,
        got: usize,
        expected: usize,
    },
    #[error(
        "the secret key `{name}` is inconsistent: its public half does not belong to its seed. Fix: the file is corrupt; restore it or generate a new key with `kubepki cache-key --rotate`."
    )]
    Inconsistent { name: String },
    #[error("the public key `{name}` is not a valid ed25519 point. Fix: copy the whole key.")]
    NotAPoint { name: String },
    #[error("{what} is not text. Fix: the file is corrupt; restore it from git.")]
    NotText { what: &'static str },
}

/// The default name for a cluster's first key.
pub fn default_key_name(cluster: &str) -> String {
    format!("{cluster}-cache-1")
}

/// The name a rotated key takes: `…-1` becomes `…-2`; a name without a number gets `-2`.
///
/// Hosts pick the public key by name, so a new key under a new name lets both
/// be trusted while the cache is re-signed, and dropping the old name revokes it.
pub fn next_key_name(name: &str) -> String {
    if let Some((stem, number)) = name.rsplit_once('-')
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = number.parse::<u64>()
    {
        return format!("{stem}-{}", n + 1);
    }
    format!("{name}-2")
}

/// Checks a key name the way Nix and the narinfo format need it: non-empty, no `:`, no spaces.
pub fn check_key_name(name: &str) -> Result<(), KeyError> {
    let bad = |reason| {
        Err(KeyError::BadName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.contains(':') {
        return bad("it contains `:`, which separates the name from the key");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return bad("it contains characters other than letters, digits, `.`, `-` and `_`");
    }
    Ok(())
}

/// The text of a secret key, `name:base64(64 bytes)`, wiped from memory when dropped.
pub struct SecretKeyText(Zeroizing<String>);

impl SecretKeyText {
    /// The text, for writing into a CI secret or a key file; every use is visible by this name.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKeyText(<redacted>)")
    }
}

/// A binary-cache signing key: its name and the ed25519 key pair (zeroized on drop).
pub struct CacheSigningKey {
    name: String,
    key: SigningKey,
}

impl fmt::Debug for CacheSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheSigningKey")
            .field("name", &self.name)
            .field("public", &self.public_key().to_string())
            .finish_non_exhaustive()
    }
}

impl CacheSigningKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate(name: &str) -> Result<CacheSigningKey, KeyError> {
        check_key_name(name)?;
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        Ok(CacheSigningKey {
            name: name.to_string(),
            key,
        })
    }

    /// Reads `name:base64(seed‖public)`, as Nix writes it; surrounding whitespace is ignored.
    pub fn from_nix(text: &str) -> Result<CacheSigningKey, KeyError> {
        const WHAT: &str = "the secret key";
        let (name, encoded) = text
            .trim()
            .split_once(':')
            .ok_or(KeyError::MissingName { what: WHAT })?;
        check_key_name(name)?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(66));
        STANDARD
            .decode_vec(encoded, &mut bytes)
            .map_err(|_| KeyError::Base64 {
                what: WHAT,
                name: name.to_string(),
            })?;
        let pair: Zeroizing<[u8; 64]> = match <[u8; 64]>::try_from(bytes.as_slice()) {
            Ok(pair) => Zeroizing::new(pair),
            Err(_) => {
                return Err(KeyError::Length {
                    what: WHAT,
                    name: name.to_string(),
                    got: bytes.len(),
                    expected: 64,
                });
            }
        };
        let key = SigningKey::from_keypair_bytes(&pair).map_err(|_| KeyError::Inconsistent {
            name: name.to_string(),
        })?;
        Ok(CacheSigningKey {
            name: name.to_string(),
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `name:base64(seed‖public)`, the form `secret-key=` and `--key-file` read.
    pub fn to_nix(&self) -> SecretKeyText {
        let pair = Zeroizing::new(self.key.to_keypair_bytes());
        let mut text = Zeroizing::new(String::with_capacity(self.name.len() + 1 + 88));
        text.push_str(&self.name);
        text.push(':');
        STANDARD.encode_string(pair.as_slice(), &mut text);
        SecretKeyText(text)
    }

    pub fn public_key(&self) -> CachePublicKey {
        CachePublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs a narinfo fingerprint; returns the `Sig:` value `name:base64(signature)`.
    pub fn sign(&self, fingerprint: &str) -> String {
        let signature = self.key.sign(fingerprint.as_bytes());
        format!("{}:{}", self.name, STANDARD.encode(signature.to_bytes()))
    }
}

/// A public key hosts trust: `name:base64(32 bytes)`, the `trusted-public-keys` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePublicKey {
    pub name: String,
    pub key: VerifyingKey,
}

impl CachePublicKey {
    pub fn parse(text: &str) -> Result<CachePublicKey, KeyError> {
        const WHAT: &str = "the public key";
        let (name, encoded) = text
            .trim()
            .split_once(':')
            .ok_or(KeyError::MissingName { what: WHAT })?;
        check_key_name(name)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| KeyError::Base64 {
            what: WHAT,
            name: name.to_string(),
        })?;
        let bytes = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length {
            what: WHAT,
            name: name.to_string(),
            got: bytes.len(),
            expected: 32,
        })?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotAPoint {
            name: name.to_string(),
        })?;
        Ok(CachePublicKey {
            name: name.to_string(),
            key,
        })
    }
}

impl fmt::Display for CachePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, STANDARD.encode(self.key.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated by `nix-store --generate-binary-cache-key test-1 sec pub` (Nix 2.8).
    const NIX_SECRET: &str = "test-1:2N8B7Ut3XffIQVYnMQhs+b3ZOlPjUt3cFlhUd8OXBf32eynUYyFNqCMMF+CPAiDkV4LXfUyIAGqfNMQjxbv9DA==";
    const NIX_PUBLIC: &str = "test-1:9nsp1GMhTagjDBfgjwIg5FeC131MiABqnzTEI8W7/Qw=";

    #[test]
    fn reads_a_key_nix_generated_and_derives_its_public_half() {
        let key = CacheSigningKey::from_nix(NIX_SECRET).unwrap();
        assert_eq!(key.name(), "test-1");
        assert_eq!(key.public_key().to_string(), NIX_PUBLIC);
        assert_eq!(key.to_nix().expose(), NIX_SECRET);
    }

    #[test]
    fn generated_keys_round_trip_and_differ() {
        let a = CacheSigningKey::generate("ducksnest-cache-1").unwrap();
        let b = CacheSigningKey::generate("ducksnest-cache-1").unwrap();
        assert_ne!(a.public_key(), b.public_key());
        let text = a.to_nix();
        assert!(text.expose().starts_with("ducksnest-cache-1:"));
        assert_eq!(text.expose().len(), "ducksnest-cache-1:".len() + 88);
        let back = CacheSigningKey::from_nix(text.expose()).unwrap();
        assert_eq!(back.public_key(), a.public_key());
        let public = a.public_key().to_string();
        assert_eq!(CachePublicKey::parse(&public).unwrap(), a.public_key());
        assert_eq!(public.len(), "ducksnest-cache-1:".len() + 44);
    }

    #[test]
    fn refuses_a_secret_whose_halves_do_not_match() {
        let a = CacheSigningKey::generate("k-1").unwrap();
        let mut pair = a.key.to_keypair_bytes();
        pair[40] ^= 1;
        let text = format!("k-1:{}", STANDARD.encode(pair));
        assert!(matches!(
            CacheSigningKey::from_nix(&text),
            Err(KeyError::Inconsistent { .. })
        ));
    }

    #[test]
    fn refuses_public_keys_of_the_wrong_shape() {
        assert!(matches!(
            CachePublicKey::parse("no-colon"),
            Err(KeyError::MissingName { .. })
        ));
        assert!(matches!(
            CachePublicKey::parse("k-1:AAAA"),
            Err(KeyError::Length { got: 3, .. })
        ));
        assert!(matches!(
            CachePublicKey::parse("k-1:!!"),
            Err(KeyError::Base64 { .. })
        ));
        // A secret pasted where a public key belongs is caught by its length.
        assert!(matches!(
            CachePublicKey::parse(NIX_SECRET),
            Err(KeyError::Length { got: 64, .. })
        ));
    }

    #[test]
    fn names_bump_their_number_on_rotation() {
        assert_eq!(next_key_name("ducksnest-cache-1"), "ducksnest-cache-2");
        assert_eq!(next_key_name("cache.example.org-9"), "cache.example.org-10");
        assert_eq!(next_key_name("ducksnest-cache"), "ducksnest-cache-2");
        assert_eq!(default_key_name("ducksnest"), "ducksnest-cache-1");
    }

    #[test]
    fn names_with_separators_are_refused() {
        assert!(check_key_name("a:b").is_err());
        assert!(check_key_name("a b").is_err());
        assert!(check_key_name("").is_err());
        assert!(check_key_name("cache.example.org-1").is_ok());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let key = CacheSigningKey::from_nix(NIX_SECRET).unwrap();
        let shown = format!("{key:?} {:?}", key.to_nix());
        assert!(!shown.contains("2N8B7Ut3"), "{shown}");
    }
}

//! The signed Nix binary cache: the signing key, sealing it, and checking what a cache serves.
//!
//! CI pushes every host's closure to S3 signed with one ed25519 key; hosts
//! trust only that key's public half (`require-sigs` stays on), so write access
//! to the bucket no longer means root on every node. [`key`] is the Nix key
//! format, [`sealed`] keeps the secret half encrypted to the operators and CI,
//! [`verify`] checks narinfo signatures and NARs as a host would, [`nix32`] is
//! Nix's hash encoding. This module creates the key and records it in the
//! inventory; it does not upload anything or talk to S3 (that is `nix copy` in
//! `.github/workflows/cache.yml`), and the NixOS side is `modules/cache.nix`.

pub mod key;
pub mod nix32;
pub mod sealed;
pub mod verify;

use std::path::PathBuf;

use crate::inventory::edit::EditError;
use crate::inventory::{Inventory, Recipient};

use key::{CachePublicKey, CacheSigningKey, KeyError};
use sealed::SealedKeyError;
use verify::VerifyError;

/// Where the sealed signing key goes when `cache.secret_key_file` is not set (relative to the inventory).
pub const DEFAULT_SECRET_KEY_FILE: &str = "cache/signing-key.age";

/// Everything `kubepki cache-key`, `cache secret` and `cache verify` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("{0}")]
    Sealed(#[from] SealedKeyError),
    #[error("{0}")]
    Verify(#[from] VerifyError),
    #[error("{0}")]
    Edit(#[from] EditError),
    #[error(
        "a cache signing key already exists ({what}). Refusing to replace it: hosts trust `{name}` and CI signs with it. Fix: keep it, or run `kubepki cache-key --rotate`, which makes a new key named `{next}` (the number in the name is bumped so hosts can tell the keys apart and the old one is revoked by dropping it)."
    )]
    Exists {
        what: String,
        name: String,
        next: String,
    },
    #[error(
        "--rotate needs a new key name, but `{name}` is the current one. Fix: omit --name (kubepki picks `{next}`) or choose another name."
    )]
    RotateSameName { name: String, next: String },
    #[error(
        "{path}: `cache.ci_recipients[{index}]`: {reason}. Fix: use an `age1…` key or an `ssh-ed25519`/`ssh-rsa` public key."
    )]
    CiRecipient {
        path: PathBuf,
        index: usize,
        reason: String,
    },
    #[error(
        "the cache URL `{url}` is not one Nix substitutes from. Fix: use `s3://BUCKET?region=REGION`, `https://…` or `file:///…`."
    )]
    BadUrl { url: String },
    #[error(
        "cannot write the sealed cache key {path}: {source}. Fix: check the folder is writable."
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} has no `cache.public_key`. Fix: run `kubepki cache-key`, or pass --trusted-key NAME:BASE64."
    )]
    NoPublicKey { path: PathBuf },
    #[error("{path}: `cache.public_key`: {source}")]
    InventoryPublicKey { path: PathBuf, source: KeyError },
    #[error(
        "the key sealed in {sealed} is `{found}`, but {inventory} trusts `{recorded}`. Fix: the two were changed separately; restore both from git, or run `kubepki cache-key --rotate`."
    )]
    Mismatch {
        sealed: PathBuf,
        inventory: PathBuf,
        found: String,
        recorded: String,
    },
}

/// What `kubepki cache-key` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct KeyRequest {
    /// The key name; by default `<cluster>-cache-1`, or the next number on rotation.
    pub name: Option<String>,
    /// The substituter URL to record; by default the inventory's `cache.url`.
    pub url: Option<String>,
    /// Replace an existing key (with a new name).
    pub rotate: bool,
}

/// The result of `kubepki cache-key`: the key (for `--print-secret`) and what was recorded.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: CacheSigningKey,
    pub sealed_file: PathBuf,
    pub url: Option<String>,
    /// The key this one replaces, on rotation.
    pub replaced: Option<String>,
    /// How many recipients can open the sealed file.
    pub recipients: usize,
}

/// The sealed key's path: `cache.secret_key_file` or [`DEFAULT_SECRET_KEY_FILE`], relative to the inventory.
pub fn sealed_key_path(inventory: &Inventory) -> PathBuf {
    let relative = inventory
        .spec
        .cache
        .as_ref()
        .and_then(|c| c.secret_key_file.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SECRET_KEY_FILE));
    inventory.base_dir().join(relative)
}

/// Every recipient the signing key is sealed to: all operators, then `cache.ci_recipients`.
pub fn key_recipients(inventory: &Inventory) -> Result<Vec<Recipient>, CacheError> {
    let mut recipients: Vec<Recipient> = inventory.all_operator_recipients().cloned().collect();
    let ci = inventory
        .spec
        .cache
        .as_ref()
        .map(|c| c.ci_recipients.as_slice())
        .unwrap_or_default();
    for (index, text) in ci.iter().enumerate() {
        let recipient = Recipient::parse(text, &format!("cache.ci_recipients[{index}]")).map_err(
            |problem| CacheError::CiRecipient {
                path: inventory.path.clone(),
                index,
                reason: problem.to_string(),
            },
        )?;
        if !recipients.contains(&recipient) {
            recipients.push(recipient);
        }
    }
    if recipients.is_empty() {
        return Err(SealedKeyError::NoRecipients.into());
    }
    Ok(recipients)
}

/// The public keys hosts trust, from the inventory's `cache.public_key`.
pub fn inventory_public_key(inventory: &Inventory) -> Result<CachePublicKey, CacheError> {
    let text = inventory
        .spec
        .cache
        .as_ref()
        .and_then(|c| c.public_key.as_deref())
        .ok_or_else(|| CacheError::NoPublicKey {
            path: inventory.path.clone(),
        })?;
    CachePublicKey::parse(text).map_err(|source| CacheError::InventoryPublicKey {
        path: inventory.path.clone(),
        source,
    })
}

/// Checks that a URL is one Nix can use as a substituter.
pub fn check_url(url: &str) -> Result<(), CacheError> {
    let known = [
        "s3://",
        "https://",
        "http://",
        "file://",
        "ssh://",
        "ssh-ng://",
    ];
    let rest = known.iter().find_map(|scheme| url.strip_prefix(scheme));
    match rest {
        Some(rest) if !rest.is_empty() && !url.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(CacheError::BadUrl {
            url: url.to_string(),
        }),
    }
}

/// Decides the new key's name, and the name of the key it replaces; pure.
///
/// `existing` describes a key that already exists (recorded or sealed), if any:
/// without `rotate` that is refused; with it the name's number is bumped, since
/// hosts tell keys apart by name. The current name is the recorded public key's,
/// else `cache.key_name`, else `<cluster>-cache-1`.
pub fn choose_key_name(
    cluster: &str,
    cache: &crate::inventory::Cache,
    existing: Option<&str>,
    request: &KeyRequest,
) -> Result<(String, Option<String>), CacheError> {
    let current = cache
        .public_key
        .as_deref()
        .and_then(|k| k.split_once(':'))
        .map(|(name, _)| name.to_string())
        .or_else(|| cache.key_name.clone())
        .unwrap_or_else(|| key::default_key_name(cluster));
    match (existing, request.rotate) {
        (None, _) => Ok((request.name.clone().unwrap_or(current), None)),
        (Some(what), false) => Err(CacheError::Exists {
            what: what.to_string(),
            next: key::next_key_name(&current),
            name: current,
        }),
        (Some(_), true) => {
            let new = request
                .name
                .clone()
                .unwrap_or_else(|| key::next_key_name(&current));
            if new == current {
                return Err(CacheError::RotateSameName {
                    next: key::next_key_name(&current),
                    name: current,
                });
            }
            Ok((new, Some(current)))
        }
    }
}

/// Generates the signing key, seals it, and records its public half in the inventory.
///
/// The sealed file is written first; if the inventory then cannot be updated
/// the previous sealed file (or none) is put back, so the two never disagree.
pub fn create_signing_key(
    inventory: &Inventory,
    request: &KeyRequest,
) -> Result<CreatedKey, CacheError> {
    let cache = inventory.spec.cache.clone().unwrap_or_default();
    let sealed_file = sealed_key_path(inventory);
    let previous_sealed = match std::fs::read(&sealed_file) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(SealedKeyError::SealedUnreadable {
                path: sealed_file,
                reason: e.to_string(),
            }
            .into());
        }
    };
    let existing = match (&cache.public_key, &previous_sealed) {
        (Some(_), _) => Some(format!(
            "`cache.public_key` in {}",
            inventory.path.display()
        )),
        (None, Some(_)) => Some(format!("{}", sealed_file.display())),
        (None, None) => None,
    };
    let (name, replaced) = choose_key_name(
        &inventory.spec.cluster.name,
        &cache,
        existing.as_deref(),
        request,
    )?;
    let url = request.url.clone().or(cache.url.clone());
    if let Some(url) = &url {
        check_url(url)?;
    }
    let recipients = key_recipients(inventory)?;
    let key = CacheSigningKey::generate(&name)?;
    let sealed = sealed::seal(key.to_nix().expose().as_bytes(), &recipients)?;
    crate::atomic::write(&sealed_file, &sealed, 0o644).map_err(|source| CacheError::Write {
        path: sealed_file.clone(),
        source,
    })?;
    let public = key.public_key().to_string();
    let recorded = crate::inventory::edit::update(&inventory.path, |doc| {
        record_in_inventory(doc, &name, &public, url.as_deref());
    });
    if let Err(error) = recorded {
        let restored = match &previous_sealed {
            Some(bytes) => crate::atomic::write(&sealed_file, bytes, 0o644),
            None => std::fs::remove_file(&sealed_file),
        };
        if let Err(source) = restored {
            return Err(CacheError::Write {
                path: sealed_file,
                source,
            });
        }
        return Err(error.into());
    }
    Ok(CreatedKey {
        key,
        sealed_file,
        url,
        replaced,
        recipients: recipients.len(),
    })
}

/// Writes `key_name`, `public_key` and `url` into `[cache]`, creating the table if needed.
fn record_in_inventory(
    doc: &mut toml_edit::DocumentMut,
    name: &str,
    public: &str,
    url: Option<&str>,
) {
    if !doc.contains_key("cache") {
        let mut table = toml_edit::Table::new();
        table.decor_mut().set_prefix(
            "\n# The signed Nix binary cache hosts substitute from. `kubepki cache-key`\n\
             # writes key_name and public_key; the secret half is sealed to the operators\n\
             # and ci_recipients in secret_key_file (default cache/signing-key.age).\n",
        );
        doc.insert("cache", toml_edit::Item::Table(table));
    }
    let Some(table) = doc.get_mut("cache").and_then(|c| c.as_table_like_mut()) else {
        // Not a table: the re-validation in `edit::update` reports the inventory as it is.
        return;
    };
    if let Some(url) = url {
        table.insert("url", toml_edit::value(url));
    }
    table.insert("key_name", toml_edit::value(name));
    table.insert("public_key", toml_edit::value(public));
}

/// Opens the sealed key with `identities` and checks it is the key the inventory trusts.
pub fn open_signing_key(
    inventory: &Inventory,
    identities: &[PathBuf],
) -> Result<CacheSigningKey, CacheError> {
    let sealed_file = sealed_key_path(inventory);
    let identities = sealed::read_identities(identities)?;
    let plain = sealed::open(&sealed_file, &identities)?;
    let text = std::str::from_utf8(&plain).map_err(|_| KeyError::NotText {
        what: "the sealed secret key",
    })?;
    let key = CacheSigningKey::from_nix(text)?;
    if let Some(recorded) = inventory
        .spec
        .cache
        .as_ref()
        .and_then(|c| c.public_key.clone())
        && recorded.trim() != key.public_key().to_string()
    {
        return Err(CacheError::Mismatch {
            sealed: sealed_file,
            inventory: inventory.path.clone(),
            found: key.public_key().to_string(),
            recorded,
        });
    }
    Ok(key)
}

/// The trusted keys for `cache verify`: those given, else the inventory's.
pub fn trusted_keys_for(
    given: &[String],
    inventory: impl FnOnce() -> Result<Inventory, crate::inventory::InventoryErrors>,
) -> Result<Vec<CachePublicKey>, crate::Error> {
    if !given.is_empty() {
        return given
            .iter()
            .map(|k| CachePublicKey::parse(k).map_err(|e| CacheError::Key(e).into()))
            .collect();
    }
    let inventory = inventory()?;
    Ok(vec![inventory_public_key(&inventory)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Cache;

    fn request(name: Option<&str>, rotate: bool) -> KeyRequest {
        KeyRequest {
            name: name.map(str::to_string),
            url: None,
            rotate,
        }
    }

    #[test]
    fn a_first_key_is_named_after_the_cluster_or_the_inventory() {
        let none = Cache::default();
        let chosen = choose_key_name("ducksnest", &none, None, &request(None, false)).unwrap();
        assert_eq!(chosen, ("ducksnest-cache-1".to_string(), None));
        let named = Cache {
            key_name: Some("cache.example.org-1".into()),
            ..Cache::default()
        };
        let chosen = choose_key_name("ducksnest", &named, None, &request(None, false)).unwrap();
        assert_eq!(chosen.0, "cache.example.org-1");
        let chosen =
            choose_key_name("ducksnest", &named, None, &request(Some("mine-1"), false)).unwrap();
        assert_eq!(chosen.0, "mine-1");
    }

    #[test]
    fn an_existing_key_needs_rotate_and_rotation_bumps_the_trusted_name() {
        let recorded = Cache {
            key_name: Some("stale-name-7".into()),
            public_key: Some("ducksnest-cache-1:AAAA".into()),
            ..Cache::default()
        };
        let refused = choose_key_name("ducksnest", &recorded, Some("x"), &request(None, false));
        assert!(matches!(
            refused,
            Err(CacheError::Exists { ref name, ref next, .. })
                if name == "ducksnest-cache-1" && next == "ducksnest-cache-2"
        ));
        let rotated =
            choose_key_name("ducksnest", &recorded, Some("x"), &request(None, true)).unwrap();
        assert_eq!(
            rotated,
            (
                "ducksnest-cache-2".to_string(),
                Some("ducksnest-cache-1".to_string())
            )
        );
        let same = choose_key_name(
            "ducksnest",
            &recorded,
            Some("x"),
            &request(Some("ducksnest-cache-1"), true),
        );
        assert!(matches!(same, Err(CacheError::RotateSameName { .. })));
    }

    #[test]
    fn urls_nix_cannot_substitute_from_are_refused() {
        assert!(check_url("s3://ducksnest-cache?region=ap-northeast-2").is_ok());
        assert!(check_url("https://cache.example.org").is_ok());
        assert!(check_url("ducksnest-cache").is_err());
        assert!(check_url("s3://").is_err());
        assert!(check_url("s3://a b").is_err());
    }
}

//! Writing back into `cluster.toml` without disturbing the user's formatting and comments.
//!
//! kubepki records a few facts it generates (CA pins, the cache public key) in
//! the inventory so the NixOS modules can read them. Edits go through
//! toml_edit and an atomic write; the result is re-validated before it
//! replaces the file, so an edit can never leave an inventory that fails to load.

use std::path::Path;

use toml_edit::DocumentMut;

use super::{Inventory, InventoryErrors};

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(
        "cannot read {path} to update it: {source}. Fix: check the file exists and is readable."
    )]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot parse {path} to update it: {source}. Fix: correct the TOML syntax first.")]
    Parse {
        path: String,
        source: toml_edit::TomlError,
    },
    #[error("the update would make {path} invalid:\n{errors}")]
    WouldBreak {
        path: String,
        errors: InventoryErrors,
    },
    #[error("cannot write {path}: {source}. Fix: check the folder is writable.")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Applies `change` to the inventory document and writes it back atomically if it still validates.
/// Returns whether the file changed.
pub fn update(path: &Path, change: impl FnOnce(&mut DocumentMut)) -> Result<bool, EditError> {
    let shown = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|source| EditError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut doc: DocumentMut = source.parse().map_err(|source| EditError::Parse {
        path: shown.clone(),
        source,
    })?;
    change(&mut doc);
    let updated = doc.to_string();
    if updated == source {
        return Ok(false);
    }
    Inventory::from_source(path, &updated).map_err(|errors| EditError::WouldBreak {
        path: shown.clone(),
        errors,
    })?;
    let mode = std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap_or(0o644);
    crate::atomic::write(path, updated.as_bytes(), mode).map_err(|source| EditError::Write {
        path: shown,
        source,
    })?;
    Ok(true)
}

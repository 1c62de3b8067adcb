//! What a new generation changes compared with the live one: content, owner, mode, added, removed.
//!
//! Comparison reads the live generation's files (small, on tmpfs) and their
//! metadata without following symlinks. The union of the units of every
//! changed file is what must restart; a file that changed only in mode or
//! owner counts, since a service may have lost or gained access. This module
//! writes nothing.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use zeroize::Zeroizing;

use super::generation::{METADATA, Metadata};
use super::owner::Owner;

/// One file of a generation, as it will be written.
pub struct GenerationFile {
    pub name: String,
    pub contents: Zeroizing<Vec<u8>>,
    pub owner: Owner,
    pub mode: u32,
    pub units: Vec<String>,
}

/// How one file differs from the live generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Difference {
    Added,
    Content,
    Owner,
    Mode,
    Removed,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Difference::Added => "added",
            Difference::Content => "content",
            Difference::Owner => "owner",
            Difference::Mode => "mode",
            Difference::Removed => "removed",
        })
    }
}

/// A file that differs, with the units that read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub name: String,
    pub differences: Vec<Difference>,
    pub units: Vec<String>,
}

/// Compares `files` with the live generation in `live` (none: everything is added).
pub fn compare(
    live: Option<(&Path, &Metadata)>,
    files: &[GenerationFile],
) -> io::Result<Vec<Change>> {
    let mut changes = Vec::new();
    let Some((dir, metadata)) = live else {
        return Ok(files
            .iter()
            .map(|f| Change {
                name: f.name.clone(),
                differences: vec![Difference::Added],
                units: f.units.clone(),
            })
            .collect());
    };
    for file in files {
        let differences = differences(&dir.join(&file.name), file)?;
        if !differences.is_empty() {
            changes.push(Change {
                name: file.name.clone(),
                differences,
                units: file.units.clone(),
            });
        }
    }
    let wanted: BTreeSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name == METADATA || wanted.contains(name.as_str()) {
            continue;
        }
        changes.push(Change {
            units: metadata.units.get(&name).cloned().unwrap_or_default(),
            name,
            differences: vec![Difference::Removed],
        });
    }
    Ok(changes)
}

fn differences(path: &Path, file: &GenerationFile) -> io::Result<Vec<Difference>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => meta,
        Ok(_) => return Ok(vec![Difference::Added]),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![Difference::Added]),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    let same_content = meta.len() == file.contents.len() as u64
        && *Zeroizing::new(fs::read(path)?) == *file.contents;
    if !same_content {
        out.push(Difference::Content);
    }
    if meta.uid() != file.owner.uid || meta.gid() != file.owner.gid {
        out.push(Difference::Owner);
    }
    if meta.mode() & 0o7777 != file.mode {
        out.push(Difference::Mode);
    }
    Ok(out)
}

/// The units to restart: the union over all changes, sorted, each once.
pub fn units(changes: &[Change]) -> Vec<String> {
    let set: BTreeSet<&String> = changes.iter().flat_map(|c| &c.units).collect();
    set.into_iter().cloned().collect()
}

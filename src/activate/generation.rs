//! Numbered generations under the target and the `current` symlink that selects one.
//!
//! Layout: `<target>/generations/<n>/` holds one complete set of files,
//! `<target>/current` is a relative symlink `generations/<n>`. A new
//! generation is written in full under a hidden name, renamed to its number,
//! and only then does `current` flip, by renaming a fresh `current.tmp`
//! symlink over it: a reader (or a crash) sees the old set or the new one.
//! Old generations beyond `keep` are deleted. This module does not decide
//! what goes into a generation.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The metadata file in each generation: which units read each file.
pub const METADATA: &str = ".kubepki-generation.json";

/// What a generation records about itself, so the next activation can restart
/// the units of a file that disappears.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metadata {
    pub node: String,
    pub manifest_sha256: String,
    pub units: std::collections::BTreeMap<String, Vec<String>>,
}

/// Paths under one target directory.
#[derive(Debug, Clone)]
pub struct Target {
    pub root: PathBuf,
}

impl Target {
    pub fn new(root: &Path) -> Target {
        Target {
            root: root.to_path_buf(),
        }
    }

    pub fn generations(&self) -> PathBuf {
        self.root.join("generations")
    }

    pub fn generation(&self, n: u64) -> PathBuf {
        self.generations().join(n.to_string())
    }

    /// Where generation `n` is assembled before it gets its number.
    pub fn partial(&self, n: u64) -> PathBuf {
        self.generations().join(format!(".partial-{n}"))
    }

    pub fn current_link(&self) -> PathBuf {
        self.root.join(super::CURRENT_LINK)
    }

    /// The live generation's number, if `current` points at a generation that exists.
    pub fn current(&self) -> io::Result<Option<u64>> {
        let link = match fs::read_link(self.current_link()) {
            Ok(link) => link,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Ok(None),
            Err(e) => return Err(e),
        };
        let n = link
            .strip_prefix("generations")
            .ok()
            .and_then(|rest| rest.to_str())
            .and_then(|rest| rest.parse::<u64>().ok());
        Ok(n.filter(|n| self.generation(*n).is_dir()))
    }

    /// Every numbered generation on disk, ascending.
    pub fn numbers(&self) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(self.generations()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if let Some(n) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The number the next generation gets: one past every generation seen, live or not.
    pub fn next_number(&self) -> io::Result<u64> {
        Ok(self.numbers()?.last().map_or(1, |n| n + 1))
    }

    /// Removes half-written generations left by an interrupted activation.
    pub fn remove_partials(&self) -> io::Result<()> {
        let entries = match fs::read_dir(self.generations()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(".partial-") {
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }

    /// Points `current` at generation `n` atomically.
    pub fn swap(&self, n: u64) -> io::Result<()> {
        let temp = self.root.join("current.tmp");
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        symlink(Path::new("generations").join(n.to_string()), &temp)?;
        fs::rename(&temp, self.current_link())?;
        File::open(&self.root)?.sync_all()
    }

    /// Deletes all but the `keep` newest generations besides `live`; returns the ones deleted.
    pub fn prune(&self, live: u64, keep: usize) -> io::Result<Vec<u64>> {
        let old: Vec<u64> = self.numbers()?.into_iter().filter(|n| *n != live).collect();
        let excess = old.len().saturating_sub(keep);
        let doomed: Vec<u64> = old.into_iter().take(excess).collect();
        for n in &doomed {
            fs::remove_dir_all(self.generation(*n))?;
        }
        Ok(doomed)
    }

    pub fn read_metadata(&self, n: u64) -> Metadata {
        fs::read(self.generation(n).join(METADATA))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_and_prune_keep_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::new(dir.path());
        for n in 1..=5 {
            fs::create_dir_all(target.generation(n)).unwrap();
            target.swap(n).unwrap();
            assert_eq!(target.current().unwrap(), Some(n));
        }
        assert_eq!(target.next_number().unwrap(), 6);
        assert_eq!(target.prune(5, 2).unwrap(), vec![1, 2]);
        assert_eq!(target.numbers().unwrap(), vec![3, 4, 5]);
        assert!(!dir.path().join("current.tmp").exists());
    }

    #[test]
    fn a_dangling_current_is_no_generation() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::new(dir.path());
        symlink("generations/7", target.current_link()).unwrap();
        assert_eq!(target.current().unwrap(), None);
    }
}

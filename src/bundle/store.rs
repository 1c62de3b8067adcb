//! The bundle folder on disk: reading and verifying it, and replacing it all at once.
//!
//! A new bundle is built in a staging folder next to the old one
//! (`.<name>.kubepki-staging`): unchanged files are hard-linked from the old
//! bundle (so they keep their mtime), new ones written, the manifest last,
//! everything synced, then the two folders are exchanged atomically
//! (`renameat2(RENAME_EXCHANGE)`; where the filesystem lacks it, two renames
//! via `.<name>.kubepki-old`, repaired at the next start). A run killed at any
//! point leaves the old bundle or the new one. A lock file
//! (`.<name>.kubepki-lock`) keeps two runs from interleaving. This module
//! knows nothing about certificates; it moves bytes and checks digests.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use super::BundleError;
use super::manifest::{MANIFEST_FILE, Manifest};

/// A bundle as it is on disk.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Bundle {
    /// Reads `dir/manifest.json`. Does not check file digests; see [`Bundle::verify`].
    pub fn open(dir: &Path) -> Result<Bundle, BundleError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = fs::read(&path).map_err(|source| BundleError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let manifest = Manifest::from_json(&bytes).map_err(|e| BundleError::BadManifest {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if manifest.format != super::manifest::FORMAT {
            return Err(BundleError::BadManifest {
                path: path.display().to_string(),
                reason: format!(
                    "format {} is not the supported format {}",
                    manifest.format,
                    super::manifest::FORMAT
                ),
            });
        }
        Ok(Bundle {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// [`Bundle::open`], or `None` when the folder has no manifest yet.
    pub fn open_if_exists(dir: &Path) -> Result<Option<Bundle>, BundleError> {
        if dir.join(MANIFEST_FILE).exists() {
            Bundle::open(dir).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The bytes of bundle file `path`, checked against the manifest's digest.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, BundleError> {
        let full = self.dir.join(path);
        let entry = self
            .manifest
            .files
            .get(path)
            .ok_or_else(|| BundleError::NotInManifest {
                path: full.display().to_string(),
            })?;
        let bytes = fs::read(&full).map_err(|source| BundleError::Read {
            path: full.display().to_string(),
            source,
        })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != entry.sha256() {
            return Err(BundleError::DigestMismatch {
                path: full.display().to_string(),
            });
        }
        Ok(bytes)
    }

    /// Checks that every file of the manifest exists with its recorded SHA-256.
    pub fn verify(&self) -> Result<(), BundleError> {
        use rayon::prelude::*;
        self.manifest
            .files
            .par_iter()
            .try_for_each(|(path, _)| self.read(path).map(|_| ()))
    }
}

/// Names of the helper paths beside a bundle folder.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    dir.with_file_name(format!(".{name}.kubepki-{suffix}"))
}

/// An exclusive hold on a bundle folder for the life of a run.
#[derive(Debug)]
pub struct BundleLock {
    dir: PathBuf,
    file: File,
}

impl BundleLock {
    /// Takes the lock, or fails naming the run that holds it; then repairs what a killed run left.
    pub fn acquire(dir: &Path) -> Result<BundleLock, BundleError> {
        let path = sibling(dir, "lock");
        let shown = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|source| BundleError::Write {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| BundleError::Write {
                path: shown.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(BundleError::Locked {
                    path: shown,
                    holder: holder.trim().to_string(),
                });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(BundleError::Write {
                    path: shown,
                    source,
                });
            }
        }
        let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let holder = format!(
            "kubepki pid {} on {} since {}\n",
            std::process::id(),
            host.trim(),
            time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        );
        let _ = file
            .set_len(0)
            .and_then(|_| file.write_all(holder.as_bytes()));
        let lock = BundleLock {
            dir: dir.to_path_buf(),
            file,
        };
        lock.recover()?;
        Ok(lock)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Finishes or undoes what a killed run left: a staging folder, or a half-done two-rename swap.
    fn recover(&self) -> Result<(), BundleError> {
        let old = sibling(&self.dir, "old");
        let staging = sibling(&self.dir, "staging");
        if old.exists() {
            if self.dir.exists() {
                // Killed after both renames: the new bundle is in place.
                remove_tree(&old)?;
            } else {
                // Killed between the renames: put the old bundle back.
                fs::rename(&old, &self.dir).map_err(|source| BundleError::Write {
                    path: self.dir.display().to_string(),
                    source,
                })?;
            }
        }
        if staging.exists() {
            remove_tree(&staging)?;
        }
        Ok(())
    }
}

impl Drop for BundleLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Removes a bundle-shaped tree, one node folder per task (thousands of unlinks are I/O-bound).
fn remove_tree_parallel(path: &Path) -> Result<(), BundleError> {
    use rayon::prelude::*;
    if let Ok(entries) = fs::read_dir(path.join("nodes")) {
        let dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.par_iter().try_for_each(|d| remove_tree(d))?;
    }
    remove_tree(path)
}

fn remove_tree(path: &Path) -> Result<(), BundleError> {
    fs::remove_dir_all(path).map_err(|source| BundleError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// A new bundle being assembled; nothing is visible until [`Transaction::commit`].
pub struct Transaction<'l> {
    lock: &'l BundleLock,
    staging: PathBuf,
    /// Whether `staging` started as the spare (the previous bundle) rather than empty.
    reused: bool,
    /// Every path staged so far; with a reused spare, anything else in it is stale.
    staged: std::collections::HashSet<String>,
    writes: AtomicUsize,
    fault_after: Option<usize>,
    crashed: AtomicBool,
    created: std::collections::HashSet<PathBuf>,
}

/// One file of the new bundle: carried over from the old one, or new bytes.
#[derive(Debug)]
pub enum StagedFile<'a> {
    Keep(&'a str),
    Write(&'a str, &'a [u8]),
}

impl StagedFile<'_> {
    fn path(&self) -> &str {
        match self {
            StagedFile::Keep(p) | StagedFile::Write(p, _) => p,
        }
    }
}

impl<'l> Transaction<'l> {
    /// Starts a staging folder for the bundle `lock` holds.
    ///
    /// The previous bundle, kept as the spare by the last commit, becomes the staging folder:
    /// its unchanged files already are the live files' inodes, so a run touches only what
    /// differs instead of hard-linking the whole bundle again. Its content is never trusted:
    /// every staged file is checked against the live one, and anything not staged is pruned.
    pub fn begin(lock: &'l BundleLock) -> Result<Transaction<'l>, BundleError> {
        let staging = sibling(&lock.dir, "staging");
        if staging.exists() {
            remove_tree(&staging)?;
        }
        let spare = sibling(&lock.dir, "spare");
        let reused = spare.is_dir() && fs::rename(&spare, &staging).is_ok();
        if !reused {
            fs::create_dir_all(&staging).map_err(|source| BundleError::Write {
                path: staging.display().to_string(),
                source,
            })?;
        }
        Ok(Transaction {
            lock,
            staging,
            reused,
            staged: Default::default(),
            writes: AtomicUsize::new(0),
            fault_after: None,
            crashed: AtomicBool::new(false),
            created: Default::default(),
        })
    }

    /// Testing hook: behave as if the process died after `n` filesystem steps
    /// (the staging folder is left behind, the swap does not happen).
    #[doc(hidden)]
    pub fn fail_after(&mut self, n: Option<usize>) {
        self.fault_after = n;
    }

    fn step(&self) -> Result<(), BundleError> {
        let done = self.writes.fetch_add(1, Ordering::SeqCst);
        if self.fault_after.is_some_and(|n| done >= n) {
            self.crashed.store(true, Ordering::SeqCst);
            return Err(BundleError::InjectedFault { after: done });
        }
        Ok(())
    }

    fn parent_dir(&mut self, target: &Path) -> Result<(), BundleError> {
        if let Some(parent) = target.parent()
            && !self.created.contains(parent)
        {
            fs::create_dir_all(parent).map_err(|source| BundleError::Write {
                path: parent.display().to_string(),
                source,
            })?;
            self.created.insert(parent.to_path_buf());
        }
        Ok(())
    }

    /// Carries file `path` over unchanged from the current bundle (a hard link: same inode, same mtime).
    pub fn keep(&mut self, path: &str) -> Result<(), BundleError> {
        self.apply(&[StagedFile::Keep(path)])
    }

    /// Writes file `path` of the new bundle (mode 0644: sealed or public content only).
    pub fn write(&mut self, path: &str, bytes: &[u8]) -> Result<(), BundleError> {
        self.apply(&[StagedFile::Write(path, bytes)])
    }

    /// Stages many files at once: folders first, then the links and writes in parallel.
    pub fn apply(&mut self, files: &[StagedFile<'_>]) -> Result<(), BundleError> {
        use rayon::prelude::*;
        for file in files {
            let target = self.staging.join(file.path());
            self.parent_dir(&target)?;
            self.staged.insert(file.path().to_string());
        }
        let this = &*self;
        files.par_iter().try_for_each(|file| this.stage(file))
    }

    fn stage(&self, file: &StagedFile<'_>) -> Result<(), BundleError> {
        self.step()?;
        let target = self.staging.join(file.path());
        let write_err = |source| BundleError::Write {
            path: target.display().to_string(),
            source,
        };
        // A reused spare may hold this path already: the very inode (nothing to do), or stale.
        match fs::symlink_metadata(&target) {
            Ok(existing) => {
                if let StagedFile::Keep(path) = file
                    && let Ok(live) = fs::symlink_metadata(self.lock.dir.join(path))
                    && same_inode(&existing, &live)
                {
                    return Ok(());
                }
                fs::remove_file(&target).map_err(write_err)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(e)),
        }
        match file {
            StagedFile::Keep(path) => {
                let source = self.lock.dir.join(path);
                fs::hard_link(&source, &target).map_err(|e| BundleError::Write {
                    path: source.display().to_string(),
                    source: e,
                })
            }
            StagedFile::Write(_, bytes) => {
                let write = || -> io::Result<()> {
                    let mut file = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&target)?;
                    file.write_all(bytes)
                };
                write().map_err(|source| BundleError::Write {
                    path: target.display().to_string(),
                    source,
                })
            }
        }
    }

    /// Writes the manifest, syncs the staging folder, and swaps it in place of the old bundle.
    pub fn commit(mut self, manifest: &Manifest) -> Result<(), BundleError> {
        let json = manifest.to_json().map_err(|e| BundleError::BadManifest {
            path: MANIFEST_FILE.into(),
            reason: e.to_string(),
        })?;
        self.write(MANIFEST_FILE, &json)?;
        if self.reused {
            let staging = self.staging.clone();
            self.prune(&staging)?;
        }
        self.step()?;
        let staging = self.staging.clone();
        let write_err = |path: &Path| {
            let path = path.display().to_string();
            move |source| BundleError::Write { path, source }
        };
        sync_filesystem(&staging).map_err(write_err(&staging))?;
        let dir = self.lock.dir.clone();
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        if dir.exists() {
            match exchange(&staging, &dir) {
                Ok(()) => {}
                Err(e) if is_unsupported(&e) => {
                    let old = sibling(&dir, "old");
                    fs::rename(&dir, &old).map_err(write_err(&dir))?;
                    self.step()?;
                    fs::rename(&staging, &dir).map_err(write_err(&dir))?;
                    crate::atomic::sync_dir(&parent).map_err(write_err(&parent))?;
                    remove_tree_parallel(&old)?;
                    return Ok(());
                }
                Err(e) => return Err(write_err(&dir)(e)),
            }
            crate::atomic::sync_dir(&parent).map_err(write_err(&parent))?;
            self.step()?;
            // `staging` now holds the old bundle: it becomes the next run's starting point.
            keep_as_spare(&staging, &sibling(&dir, "spare"))?;
        } else {
            fs::rename(&staging, &dir).map_err(write_err(&dir))?;
            crate::atomic::sync_dir(&parent).map_err(write_err(&parent))?;
            // A first bundle has no predecessor to keep: link a spare so the next run is cheap too.
            link_spare(&dir, &sibling(&dir, "spare"))?;
        }
        Ok(())
    }

    /// Removes what a reused spare holds beyond the staged paths, and the folders left empty.
    fn prune(&self, dir: &Path) -> Result<bool, BundleError> {
        let read_err = |source| BundleError::Write {
            path: dir.display().to_string(),
            source,
        };
        let mut empty = true;
        for entry in fs::read_dir(dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let path = entry.path();
            if entry.file_type().map_err(read_err)?.is_dir() {
                if self.prune(&path)? {
                    self.step()?;
                    fs::remove_dir(&path).map_err(|source| BundleError::Write {
                        path: path.display().to_string(),
                        source,
                    })?;
                } else {
                    empty = false;
                }
                continue;
            }
            let relative = path
                .strip_prefix(&self.staging)
                .ok()
                .and_then(Path::to_str)
                .unwrap_or_default();
            if self.staged.contains(relative) {
                empty = false;
            } else {
                self.step()?;
                fs::remove_file(&path).map_err(|source| BundleError::Write {
                    path: path.display().to_string(),
                    source,
                })?;
            }
        }
        Ok(empty)
    }
}

fn same_inode(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Parks the previous bundle as the spare (a crash before this leaves a staging folder, which
/// the next run's recovery removes).
fn keep_as_spare(old: &Path, spare: &Path) -> Result<(), BundleError> {
    if spare.exists() {
        remove_tree_parallel(spare)?;
    }
    fs::rename(old, spare).map_err(|source| BundleError::Write {
        path: spare.display().to_string(),
        source,
    })
}

/// Hard-links a whole bundle into a spare, one node folder per task.
fn link_spare(bundle: &Path, spare: &Path) -> Result<(), BundleError> {
    use rayon::prelude::*;
    fn link_dir(from: &Path, to: &Path) -> io::Result<()> {
        fs::create_dir_all(to)?;
        let mut subdirs = Vec::new();
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                subdirs.push((entry.path(), to.join(entry.file_name())));
            } else {
                fs::hard_link(entry.path(), to.join(entry.file_name()))?;
            }
        }
        subdirs.par_iter().try_for_each(|(f, t)| link_dir(f, t))
    }
    if spare.exists() {
        remove_tree_parallel(spare)?;
    }
    link_dir(bundle, spare).map_err(|source| BundleError::Write {
        path: spare.display().to_string(),
        source,
    })
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        // A simulated crash leaves its mess for the next run's recovery, like a real one.
        if !self.crashed.load(Ordering::SeqCst) && self.staging.exists() {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// Flushes everything written on the filesystem holding `dir` (one syncfs, not one fsync per file).
fn sync_filesystem(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let handle = File::open(dir)?;
    // SAFETY: syncfs only reads the fd, which `handle` keeps open.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Atomically exchanges two paths (Linux `renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let a = CString::new(a.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let b = CString::new(b.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them like rename(2).
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("pki");
        (root, dir)
    }

    #[test]
    fn a_run_killed_between_the_two_renames_gets_the_old_bundle_back() {
        let (_root, dir) = setup();
        let old = sibling(&dir, "old");
        fs::create_dir_all(&old).unwrap();
        fs::write(old.join("manifest.json"), b"old").unwrap();
        let staging = sibling(&dir, "staging");
        fs::create_dir_all(&staging).unwrap();
        let _lock = BundleLock::acquire(&dir).unwrap();
        assert_eq!(fs::read(dir.join("manifest.json")).unwrap(), b"old");
        assert!(!old.exists() && !staging.exists());
    }

    #[test]
    fn a_run_killed_after_both_renames_keeps_the_new_bundle() {
        let (_root, dir) = setup();
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("manifest.json"), b"new").unwrap();
        let old = sibling(&dir, "old");
        fs::create_dir_all(&old).unwrap();
        let _lock = BundleLock::acquire(&dir).unwrap();
        assert_eq!(fs::read(dir.join("manifest.json")).unwrap(), b"new");
        assert!(!old.exists());
    }

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let (_root, dir) = setup();
        let first = BundleLock::acquire(&dir).unwrap();
        let second = BundleLock::acquire(&dir);
        assert!(
            matches!(second, Err(BundleError::Locked { .. })),
            "{second:?}"
        );
        drop(first);
        BundleLock::acquire(&dir).unwrap();
    }

    #[test]
    fn exchange_swaps_two_folders() {
        let (root, dir) = setup();
        let other = root.path().join("other");
        fs::create_dir_all(&dir).unwrap();
        fs::create_dir_all(&other).unwrap();
        fs::write(dir.join("a"), b"1").unwrap();
        fs::write(other.join("b"), b"2").unwrap();
        exchange(&other, &dir).unwrap();
        assert!(dir.join("b").exists() && other.join("a").exists());
    }
}

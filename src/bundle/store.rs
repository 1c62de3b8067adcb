//! The bundle folder on disk: reading and verifying it, and replacing it all at once.
//!
//! A new bundle is built in a staging folder next to the old one
//! (`.<name>.kubepki-staging`): unchanged files are hard-linked from the old
//! bundle (so they keep their mtime), new ones written, the manifest last,
//! what changed made durable, then the two folders are exchanged atomically
//! (`renameat2(RENAME_EXCHANGE)`; where the filesystem lacks it, two renames
//! via `.<name>.kubepki-old`, repaired at the next start). A run killed at any
//! point leaves the old bundle or the new one. A lock file
//! (`.<name>.kubepki-lock`) keeps two runs from interleaving. This module
//! knows nothing about certificates; it moves bytes and checks digests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

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
    /// Whether folder listings' inode numbers can be compared (see [`listings_carry_inodes`]).
    listed_inodes: bool,
    /// Every staging folder touched so far, by path relative to the bundle (`""`: the top).
    folders: Mutex<HashMap<String, Folder>>,
    writes: AtomicUsize,
    fault_after: Option<usize>,
    crashed: AtomicBool,
}

/// A staging folder: what a reused spare held in it, and what this run put there.
#[derive(Debug, Default)]
struct Folder {
    /// What the folder holds by name: a reused spare's content, updated as this run replaces it.
    found: HashMap<OsString, Found>,
    /// Files and sub-folders of the new bundle; with a reused spare, anything else is stale.
    staged: HashSet<OsString>,
    /// Whether an entry of this folder was added, replaced or removed: it must reach the disk.
    changed: bool,
    /// Files this run wrote here (not links): their bytes must reach the disk.
    written: Vec<OsString>,
}

/// An entry of a staging folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// A regular file with this inode number: possibly the live file itself.
    File(u64),
    Folder,
    /// Anything else (a symlink, a file this run wrote): removed before its name is reused.
    Other,
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

/// `nodes/a/b.crt` -> (`nodes/a`, `b.crt`); a top-level name's folder is `""`.
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn depth(folder: &str) -> usize {
    if folder.is_empty() {
        0
    } else {
        folder.matches('/').count() + 1
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
        let reused = fs::symlink_metadata(&spare).is_ok_and(|m| m.is_dir())
            && fs::rename(&spare, &staging).is_ok();
        if !reused {
            fs::create_dir_all(&staging).map_err(|source| BundleError::Write {
                path: staging.display().to_string(),
                source,
            })?;
        }
        Ok(Transaction {
            lock,
            listed_inodes: reused && listings_carry_inodes(&staging),
            staging,
            reused,
            folders: Default::default(),
            writes: AtomicUsize::new(0),
            fault_after: None,
            crashed: AtomicBool::new(false),
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

    fn folders(&self) -> MutexGuard<'_, HashMap<String, Folder>> {
        self.folders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Carries file `path` over unchanged from the current bundle (a hard link: same inode, same mtime).
    pub fn keep(&self, path: &str) -> Result<(), BundleError> {
        self.apply(&[StagedFile::Keep(path)])
    }

    /// Writes file `path` of the new bundle (mode 0644: sealed or public content only).
    pub fn write(&self, path: &str, bytes: &[u8]) -> Result<(), BundleError> {
        self.apply(&[StagedFile::Write(path, bytes)])
    }

    /// Stages many files at once, one folder per task: folders first, shallowest first, then
    /// each folder's links and writes.
    pub fn apply(&self, files: &[StagedFile<'_>]) -> Result<(), BundleError> {
        use rayon::prelude::*;
        let mut by_folder: BTreeMap<&str, Vec<&StagedFile<'_>>> = BTreeMap::new();
        by_folder.entry("").or_default();
        for file in files {
            let (folder, _) = split(file.path());
            by_folder.entry(folder).or_default().push(file);
            let mut ancestor = folder;
            while let Some((parent, _)) = ancestor.rsplit_once('/') {
                by_folder.entry(parent).or_default();
                ancestor = parent;
            }
        }
        let mut by_depth: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        for folder in by_folder.keys() {
            by_depth.entry(depth(folder)).or_default().push(folder);
        }
        for folders in by_depth.values() {
            folders.par_iter().try_for_each(|f| self.prepare(f))?;
        }
        by_folder
            .par_iter()
            .try_for_each(|(folder, files)| self.stage_folder(folder, files))
    }

    /// Makes staging folder `folder` a real folder (its parent is prepared) and lists what a
    /// reused spare holds in it.
    fn prepare(&self, folder: &str) -> Result<(), BundleError> {
        if self.folders().contains_key(folder) {
            return Ok(());
        }
        let path = self.staging.join(folder);
        let write_err = |source| BundleError::Write {
            path: path.display().to_string(),
            source,
        };
        let mut existed = folder.is_empty();
        if !folder.is_empty() {
            let (parent, name) = split(folder);
            let found = {
                let mut folders = self.folders();
                folders.get_mut(parent).and_then(|p| {
                    p.staged.insert(name.into());
                    let found = p.found.get(OsStr::new(name)).copied();
                    p.changed |= found != Some(Found::Folder);
                    found
                })
            };
            match found {
                Some(Found::Folder) => existed = true,
                Some(other) => {
                    self.step()?;
                    remove_entry(&path, other)?;
                    fs::create_dir(&path).map_err(write_err)?;
                }
                None => fs::create_dir(&path).map_err(write_err)?,
            }
        }
        let found = if self.reused && existed {
            list(&path).map_err(write_err)?
        } else {
            HashMap::new()
        };
        let state = Folder {
            found,
            changed: !existed,
            ..Folder::default()
        };
        self.folders().insert(folder.to_string(), state);
        Ok(())
    }

    fn stage_folder(&self, folder: &str, files: &[&StagedFile<'_>]) -> Result<(), BundleError> {
        if files.is_empty() {
            return Ok(());
        }
        // One task per folder: the state is taken out so the others are not held up.
        let mut state = self.folders().remove(folder).unwrap_or_default();
        let result = self.stage_into(folder, &mut state, files);
        self.folders().insert(folder.to_string(), state);
        result
    }

    fn stage_into(
        &self,
        folder: &str,
        state: &mut Folder,
        files: &[&StagedFile<'_>],
    ) -> Result<(), BundleError> {
        // The live folder's inodes, listed once rather than one stat per kept file.
        let live =
            if self.listed_inodes && state.found.values().any(|f| matches!(f, Found::File(_))) {
                Some(list_inodes(&self.lock.dir.join(folder)))
            } else {
                None
            };
        for file in files {
            self.step()?;
            let (_, name) = split(file.path());
            let name = OsStr::new(name);
            let target = self.staging.join(file.path());
            if let Some(found) = state.found.get(name).copied() {
                // A reused spare may hold this path already: the very inode (nothing to do), or stale.
                if let (StagedFile::Keep(path), Found::File(ino)) = (file, found)
                    && self.is_live(path, name, ino, &target, live.as_ref())
                {
                    state.staged.insert(name.into());
                    continue;
                }
                remove_entry(&target, found)?;
            }
            state.found.insert(name.into(), Found::Other);
            state.changed = true;
            match file {
                StagedFile::Keep(path) => {
                    let source = self.lock.dir.join(path);
                    fs::hard_link(&source, &target).map_err(|e| BundleError::Write {
                        path: source.display().to_string(),
                        source: e,
                    })?;
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
                    })?;
                    state.written.push(name.into());
                }
            }
            state.staged.insert(name.into());
        }
        Ok(())
    }

    /// Whether the spare's file `name` (inode `ino`) is the live file `path` itself.
    fn is_live(
        &self,
        path: &str,
        name: &OsStr,
        ino: u64,
        target: &Path,
        live: Option<&HashMap<OsString, u64>>,
    ) -> bool {
        match live {
            Some(live) => live.get(name) == Some(&ino),
            None => fs::symlink_metadata(target)
                .ok()
                .zip(fs::symlink_metadata(self.lock.dir.join(path)).ok())
                .is_some_and(|(staged, live)| same_inode(&staged, &live)),
        }
    }

    /// Writes the manifest (the bytes of [`Manifest::to_json`]), syncs the staging folder, and
    /// swaps it in place of the old bundle.
    pub fn commit(self, manifest_json: &[u8]) -> Result<(), BundleError> {
        self.write(MANIFEST_FILE, manifest_json)?;
        if self.reused {
            self.prune()?;
        }
        self.step()?;
        let staging = self.staging.clone();
        let write_err = |path: &Path| {
            let path = path.display().to_string();
            move |source| BundleError::Write { path, source }
        };
        self.sync()?;
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

    /// Removes what a reused spare holds beyond the staged paths, one folder per task. A
    /// folder nothing was staged into is not in the map: its parent's listing removes it whole.
    fn prune(&self) -> Result<(), BundleError> {
        use rayon::prelude::*;
        let mut folders = std::mem::take(&mut *self.folders());
        let pruned = folders.par_iter_mut().try_for_each(|(folder, state)| {
            let dir = self.staging.join(folder);
            let stale: Vec<_> = state
                .found
                .iter()
                .filter(|(name, _)| !state.staged.contains(*name))
                .collect();
            state.changed |= !stale.is_empty();
            stale.into_iter().try_for_each(|(name, found)| {
                self.step()?;
                remove_entry(&dir.join(name), *found)
            })
        });
        *self.folders() = folders;
        pruned
    }

    /// Makes what this run changed in the staging folder durable before the swap.
    ///
    /// A small change (one node added, a few keys re-sealed) fsyncs exactly the files it
    /// wrote and the folders whose entries it changed; a big one (a first run, a fresh clone
    /// that links every file) syncs the whole filesystem once, which beats thousands of
    /// fsyncs but also flushes whatever else is dirty there, hence not for small changes.
    fn sync(&self) -> Result<(), BundleError> {
        use rayon::prelude::*;
        const MOST_FSYNCS: usize = 256;
        let paths = self.touched();
        let result = if paths.len() > MOST_FSYNCS {
            sync_filesystem(&self.staging).map_err(|source| (self.staging.clone(), source))
        } else {
            paths
                .par_iter()
                .try_for_each(|path| fsync(path).map_err(|e| (path.clone(), e)))
        };
        result.map_err(|(path, source)| BundleError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// The files this run wrote and the folders whose entries it changed, sorted.
    fn touched(&self) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        for (folder, state) in self.folders().iter() {
            let dir = self.staging.join(folder);
            paths.extend(state.written.iter().map(|name| dir.join(name)));
            if state.changed {
                paths.push(dir);
            }
        }
        paths.sort();
        paths
    }
}

/// What folder `dir` holds, told apart by the listing's file types (no stat per entry).
fn list(dir: &Path) -> io::Result<HashMap<OsString, Found>> {
    use std::os::unix::fs::DirEntryExt;
    let mut found = HashMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let what = if kind.is_file() {
            Found::File(entry.ino())
        } else if kind.is_dir() {
            Found::Folder
        } else {
            Found::Other
        };
        found.insert(entry.file_name(), what);
    }
    Ok(found)
}

/// The inode number of each regular file in `dir`; empty if it cannot be listed (a new folder).
fn list_inodes(dir: &Path) -> HashMap<OsString, u64> {
    list(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, found)| match found {
            Found::File(ino) => Some((name, ino)),
            _ => None,
        })
        .collect()
}

fn remove_entry(path: &Path, found: Found) -> Result<(), BundleError> {
    match found {
        Found::Folder => remove_tree(path),
        Found::File(_) | Found::Other => {
            fs::remove_file(path).map_err(|source| BundleError::Write {
                path: path.display().to_string(),
                source,
            })
        }
    }
}

/// Whether the inode numbers of a folder listing on the filesystem holding `dir` are the
/// files' own, so two listings tell hard links apart without a stat per file.
///
/// True on the usual local filesystems. Not trusted elsewhere: on overlayfs a listing may
/// give a lower layer's inode number, which can equal another layer's; there, and on anything
/// not named here, each kept file is stat'ed (device and inode) instead.
fn listings_carry_inodes(dir: &Path) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    const EXT: u32 = 0xEF53;
    const XFS: u32 = 0x5846_5342;
    const BTRFS: u32 = 0x9123_683E;
    const TMPFS: u32 = 0x0102_1994;
    const F2FS: u32 = 0xF2F5_2010;
    const ZFS: u32 = 0x2FC1_2FC1;
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct from a valid NUL-terminated path.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut stat) } != 0 {
        return false;
    }
    // Magic numbers fit in 32 bits; `f_type` is wider on some targets, signed on others.
    [EXT, XFS, BTRFS, TMPFS, F2FS, ZFS].contains(&(stat.f_type as u32))
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

/// Flushes one file or folder to the disk.
fn fsync(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
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

    /// A live bundle and, beside it, a spare that shares its inodes (as a commit leaves it).
    fn live_and_spare(dir: &Path) {
        for (path, text) in [
            ("ca/k.crt", "CA"),
            ("nodes/n1/x.crt", "X1"),
            ("nodes/n2/x.crt", "X2"),
            ("nodes/gone/x.crt", "G"),
            ("manifest.json", "{}"),
        ] {
            let file = dir.join(path);
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(file, text).unwrap();
        }
        link_spare(dir, &sibling(dir, "spare")).unwrap();
    }

    /// The bundle after [`live_and_spare`]'s: node `gone` removed, `n3` added.
    const NEXT_BUNDLE: [StagedFile<'static>; 4] = [
        StagedFile::Keep("ca/k.crt"),
        StagedFile::Keep("nodes/n1/x.crt"),
        StagedFile::Keep("nodes/n2/x.crt"),
        StagedFile::Write("nodes/n3/x.crt", b"X3"),
    ];

    /// Every file under `dir`, relative, with its bytes.
    fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for entry in fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let kind = entry.file_type().unwrap();
                let relative = entry
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .display()
                    .to_string();
                if kind.is_dir() {
                    walk(root, &entry.path(), out);
                } else if kind.is_symlink() {
                    out.insert(relative, b"<symlink>".to_vec());
                } else {
                    out.insert(relative, fs::read(entry.path()).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(dir, dir, &mut out);
        out
    }

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn a_tampered_spare_is_checked_whether_listings_or_stats_compare_inodes() {
        for listed in [true, false] {
            let (_root, dir) = setup();
            live_and_spare(&dir);
            let spare = sibling(&dir, "spare");
            // Replaced (a new inode with other bytes), a folder and a symlink where files
            // belong, and junk at every depth.
            fs::remove_file(spare.join("nodes/n1/x.crt")).unwrap();
            fs::write(spare.join("nodes/n1/x.crt"), "tampered").unwrap();
            fs::remove_file(spare.join("ca/k.crt")).unwrap();
            fs::create_dir_all(spare.join("ca/k.crt/inner")).unwrap();
            fs::remove_file(spare.join("nodes/n2/x.crt")).unwrap();
            std::os::unix::fs::symlink("/etc/hostname", spare.join("nodes/n2/x.crt")).unwrap();
            fs::write(spare.join("junk"), "j").unwrap();
            fs::create_dir_all(spare.join("nodes/ghost")).unwrap();
            fs::write(spare.join("nodes/ghost/x.crt"), "ghost").unwrap();
            let kept_inode = inode(&dir.join("nodes/n1/x.crt"));

            let lock = BundleLock::acquire(&dir).unwrap();
            let mut tx = Transaction::begin(&lock).unwrap();
            assert!(tx.reused, "the spare becomes the staging folder");
            tx.listed_inodes = listed;
            tx.apply(&NEXT_BUNDLE).unwrap();
            tx.commit(b"{\"new\": true}").unwrap();

            let expected: BTreeMap<String, Vec<u8>> = [
                ("ca/k.crt", "CA"),
                ("manifest.json", "{\"new\": true}"),
                ("nodes/n1/x.crt", "X1"),
                ("nodes/n2/x.crt", "X2"),
                ("nodes/n3/x.crt", "X3"),
            ]
            .into_iter()
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect();
            assert_eq!(tree(&dir), expected, "listed inodes: {listed}");
            assert_eq!(
                inode(&dir.join("nodes/n1/x.crt")),
                kept_inode,
                "a kept file is the live file itself, not a copy"
            );
        }
    }

    #[test]
    fn a_small_change_syncs_only_what_it_wrote_and_the_folders_it_changed() {
        let (_root, dir) = setup();
        live_and_spare(&dir);
        let lock = BundleLock::acquire(&dir).unwrap();
        let tx = Transaction::begin(&lock).unwrap();
        tx.apply(&NEXT_BUNDLE).unwrap();
        tx.write(MANIFEST_FILE, b"{}").unwrap();
        tx.prune().unwrap();
        let staging = sibling(&dir, "staging");
        let expected = vec![
            // The top folder: its manifest was replaced.
            staging.join(""),
            staging.join(MANIFEST_FILE),
            // `nodes`: n3 added, `gone` pruned.
            staging.join("nodes"),
            staging.join("nodes/n3"),
            staging.join("nodes/n3/x.crt"),
        ];
        assert_eq!(tx.touched(), expected);
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

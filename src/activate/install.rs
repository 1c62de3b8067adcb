//! Writing a generation: every file created under umask 077, then chown and chmod, then the swap.
//!
//! Files go into a hidden `.partial-<n>` folder first; only a complete folder
//! is renamed to `<n>`, and only then does `current` flip. A process killed at
//! any point leaves the previous generation serving, and the next run removes
//! the leftover. Plaintext belongs on tmpfs or ramfs, like agenix's
//! `/run/agenix.d`; on another filesystem this warns and fsyncs every file.
//! Concurrent activations are serialised with an flock on `<target>/.lock`.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::ActivateError;
use super::changes::GenerationFile;
use super::generation::{METADATA, Metadata, Target};

/// Mode of the target and generation folders: services traverse, only root lists.
pub const DIR_MODE: u32 = 0o751;

/// Stops the process after this many files were written (crash tests only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashAfter(pub usize);

/// An exclusive lock on the target, held until dropped.
pub struct Lock {
    _file: File,
}

/// Creates the target folders and takes the activation lock (waits for another activation).
pub fn lock(target: &Target) -> Result<Lock, ActivateError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ActivateError::Install { path, source }
    };
    for dir in [target.root.clone(), target.generations()] {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
            .map_err(io_err(&dir))?;
    }
    let path = target.root.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(&path))?;
    // SAFETY: flock on a file descriptor we own; it stays open while the lock lives.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(ActivateError::Install {
            path,
            source: io::Error::last_os_error(),
        });
    }
    Ok(Lock { _file: file })
}

/// True when `path` is on tmpfs or ramfs (or does not exist yet but its parent is).
pub fn is_memory_backed(path: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let mut probe = Some(path);
    while let Some(p) = probe {
        if p.exists() {
            let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
                return false;
            };
            // SAFETY: statfs writes into the zeroed struct we pass; `c` is NUL-terminated.
            let mut st: libc::statfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
                return false;
            }
            #[allow(clippy::unnecessary_cast)]
            let kind = st.f_type as i64;
            return kind == TMPFS_MAGIC || kind == RAMFS_MAGIC;
        }
        probe = p.parent();
    }
    false
}

/// Restores the previous umask when dropped.
struct Umask(libc::mode_t);

impl Umask {
    fn strict() -> Umask {
        // SAFETY: umask only swaps the process's file-creation mask.
        Umask(unsafe { libc::umask(0o077) })
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        // SAFETY: as above, restoring the saved mask.
        unsafe {
            libc::umask(self.0);
        }
    }
}

/// Writes generation `n` completely and gives it its number; does not flip `current`.
pub fn write_generation(
    target: &Target,
    n: u64,
    files: &[GenerationFile],
    metadata: &Metadata,
    chown: bool,
    durable: bool,
    crash_after: Option<CrashAfter>,
) -> Result<PathBuf, ActivateError> {
    let partial = target.partial(n);
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ActivateError::Install { path, source }
    };
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(fail(&partial))?;
    }
    let result = (|| {
        let _umask = Umask::strict();
        DirBuilder::new()
            .mode(0o700)
            .create(&partial)
            .map_err(fail(&partial))?;
        for (written, file) in files.iter().enumerate() {
            if crash_after.is_some_and(|CrashAfter(limit)| written >= limit) {
                std::process::abort();
            }
            let path = partial.join(&file.name);
            write_file(&path, file, chown, durable).map_err(fail(&path))?;
        }
        let json = serde_json::to_vec_pretty(metadata).map_err(|e| ActivateError::Install {
            path: partial.join(METADATA),
            source: io::Error::other(e),
        })?;
        let meta_path = partial.join(METADATA);
        let meta_file = GenerationFile {
            name: METADATA.into(),
            contents: json.into(),
            owner: super::owner::running_owner(),
            mode: 0o600,
            units: Vec::new(),
        };
        write_file(&meta_path, &meta_file, false, durable).map_err(fail(&meta_path))?;
        fs::set_permissions(&partial, fs::Permissions::from_mode(DIR_MODE))
            .map_err(fail(&partial))?;
        if durable {
            crate::atomic::sync_dir(&partial).map_err(fail(&partial))?;
        }
        let dest = target.generation(n);
        fs::rename(&partial, &dest).map_err(fail(&dest))?;
        crate::atomic::sync_dir(&target.generations()).map_err(fail(&target.generations()))?;
        Ok(dest)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&partial);
    }
    result
}

fn write_file(path: &Path, file: &GenerationFile, chown: bool, durable: bool) -> io::Result<()> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    out.write_all(&file.contents)?;
    if chown {
        std::os::unix::fs::fchown(&out, Some(file.owner.uid), Some(file.owner.gid))?;
    }
    out.set_permissions(fs::Permissions::from_mode(file.mode))?;
    if durable {
        out.sync_all()?;
    }
    Ok(())
}

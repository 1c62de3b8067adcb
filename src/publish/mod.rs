//! Publishing the bundle: stage exactly the files a run changed, commit them, optionally push.
//!
//! `recreate` and `renew` hand over the list of paths they added, rewrote or
//! deleted (bundle files, and `cluster.toml` when pins changed) together with
//! the reason for each; [`publish`] stages those paths and nothing else,
//! refuses to run when the index already holds changes kubepki did not make
//! (they would end up in its commit), writes one commit whose message says
//! what changed and why, and, when asked, pushes the current branch to its
//! upstream. It does not decide what changed (that is the pipeline's diff), it
//! never stages a path it was not given, and it never rewrites history: no
//! amend, no force push.

mod message;
mod push;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use git2::{Repository, RepositoryState, Signature};
use serde::Serialize;

pub use message::{CommitMessage, compose};
pub use push::PushTarget;

/// What happened to one file of the working tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileChange {
    Added,
    Modified,
    Deleted,
}

impl FileChange {
    /// The letter `git show --name-status` prints for it.
    pub fn letter(self) -> char {
        match self {
            FileChange::Added => 'A',
            FileChange::Modified => 'M',
            FileChange::Deleted => 'D',
        }
    }
}

/// One path a run touched, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedFile {
    /// The file on disk (absolute, or relative to the current directory); deleted files need not exist.
    pub path: PathBuf,
    pub change: FileChange,
    /// Why, in a few words: `new node laptop-ultra`, `expires in 12 days`, `recipient removed`.
    pub reason: String,
}

/// What a run changed, ready to become a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publication {
    /// The commit subject, e.g. `kubepki: add node laptop-ultra (5 certs); renew 2 expiring`.
    pub subject: String,
    pub files: Vec<ChangedFile>,
}

/// `--no-commit` and `--push`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublishOptions {
    /// Commit the staged files; `false` (`--no-commit`) leaves git untouched.
    pub commit: bool,
    /// Push the current branch to its upstream after committing.
    pub push: bool,
}

impl PublishOptions {
    pub fn commit() -> PublishOptions {
        PublishOptions {
            commit: true,
            push: false,
        }
    }
}

/// What [`publish`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Published {
    /// The run changed nothing (or only rewrote files with identical content): no commit.
    NothingChanged,
    /// `--no-commit`: the files are changed on disk, git was not touched.
    NotCommitted { files: usize },
    /// A commit was made on the current branch (and pushed, if asked).
    Committed {
        commit: String,
        subject: String,
        files: usize,
        pushed_to: Option<PushTarget>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "{path} is not inside a git repository ({source}). Fix: keep the inventory in a git repository (`git init`), or pass --no-commit."
    )]
    NotARepository { path: String, source: git2::Error },
    #[error(
        "the git repository at {path} is bare, so kubepki cannot stage its files. Fix: run kubepki in a checkout."
    )]
    BareRepository { path: String },
    #[error(
        "the git repository at {path} is in the middle of a {state}. Fix: finish or abort it first, or pass --no-commit."
    )]
    Busy { path: String, state: String },
    #[error(
        "{path} is outside the git work tree {workdir}, so it cannot be committed. Fix: keep the bundle (pki.bundle) inside the repository that holds cluster.toml."
    )]
    OutsideWorkTree { path: String, workdir: String },
    #[error(
        "the git index already holds staged changes kubepki did not make: {}. Fix: commit them or unstage them (`git restore --staged <path>`) first, or pass --no-commit.",
        .paths.join(", ")
    )]
    UnrelatedStaged { paths: Vec<String> },
    #[error("cannot read the git index of {path}: {source}. Fix: check `git status` works there.")]
    Index { path: String, source: git2::Error },
    #[error(
        "cannot stage {path}: {source}. Fix: check the file is readable and `git add {path}` works."
    )]
    Stage { path: String, source: git2::Error },
    #[error(
        "git has no author identity for the commit ({source}). Fix: `git config user.name \"Your Name\"` and `git config user.email you@example.org`, or pass --no-commit."
    )]
    NoIdentity { source: git2::Error },
    #[error("cannot commit in {path}: {source}. Fix: check `git commit` works there.")]
    Commit { path: String, source: git2::Error },
    #[error(
        "--push needs a branch, but HEAD is detached. Fix: `git switch <branch>` before running kubepki, or push by hand."
    )]
    DetachedHead,
    #[error(
        "branch `{branch}` has no upstream, so there is nothing to push to. Fix: `git push -u <remote> {branch}` once, or run without --push."
    )]
    NoUpstream { branch: String },
    #[error(
        "cannot push {branch} to {remote} ({url}): {source}. Fix: for SSH remotes load your key into ssh-agent (`ssh-add`); for HTTPS configure a git credential helper; then `git push`. The commit is made locally."
    )]
    Push {
        branch: String,
        remote: String,
        url: String,
        source: git2::Error,
    },
    #[error(
        "{remote} rejected {reference}: {message}. Fix: `git pull --rebase`, re-run kubepki, then push. The commit is made locally."
    )]
    PushRejected {
        remote: String,
        reference: String,
        message: String,
    },
}

/// Checks, before a run writes anything, that [`publish`] will be able to commit: the
/// repository exists, is not mid-merge, and holds no staged change outside `owned` (the bundle
/// folder and the inventory file). A run that wrote its bundle and then could not commit would
/// leave changes that the next, no-op, run never commits.
pub fn preflight(
    start: &Path,
    owned: &[PathBuf],
    options: PublishOptions,
) -> Result<(), PublishError> {
    if !options.commit {
        return Ok(());
    }
    let (repo, workdir) = open(start)?;
    repo.signature()
        .map_err(|source| PublishError::NoIdentity { source })?;
    let owned: Vec<PathBuf> = owned
        .iter()
        .filter_map(|p| relative_to(&workdir, p))
        .collect();
    let shown = repo.path().display().to_string();
    let head_tree = head_tree(&repo, &shown)?;
    let unrelated: Vec<String> = staged_paths(&repo, head_tree.as_ref())
        .map_err(|source| PublishError::Index {
            path: shown.clone(),
            source,
        })?
        .into_iter()
        .filter(|p| !owned.iter().any(|o| Path::new(p).starts_with(o)))
        .collect();
    if unrelated.is_empty() {
        Ok(())
    } else {
        Err(PublishError::UnrelatedStaged { paths: unrelated })
    }
}

/// The repository holding `start` and its canonical work tree, refusing bare or busy ones.
fn open(start: &Path) -> Result<(Repository, PathBuf), PublishError> {
    let repo = Repository::discover(start).map_err(|source| PublishError::NotARepository {
        path: start.display().to_string(),
        source,
    })?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| PublishError::BareRepository {
            path: repo.path().display().to_string(),
        })?
        .to_path_buf();
    if repo.state() != RepositoryState::Clean {
        return Err(PublishError::Busy {
            path: workdir.display().to_string(),
            state: format!("{:?}", repo.state()).to_lowercase(),
        });
    }
    let workdir = workdir.canonicalize().unwrap_or(workdir);
    Ok((repo, workdir))
}

fn head_tree<'r>(
    repo: &'r Repository,
    shown: &str,
) -> Result<Option<git2::Tree<'r>>, PublishError> {
    match repo.head() {
        Ok(head) => Ok(Some(head.peel_to_tree().map_err(|source| {
            PublishError::Index {
                path: shown.to_string(),
                source,
            }
        })?)),
        Err(_) => Ok(None), // unborn branch: the first commit
    }
}

/// Stages exactly `publication.files` in the repository that holds `start` (a path inside it,
/// e.g. the bundle folder), commits them, and pushes if asked.
pub fn publish(
    start: &Path,
    publication: &Publication,
    options: PublishOptions,
) -> Result<Published, PublishError> {
    if publication.files.is_empty() {
        return Ok(Published::NothingChanged);
    }
    if !options.commit {
        return Ok(Published::NotCommitted {
            files: publication.files.len(),
        });
    }
    let (repo, workdir) = open(start)?;
    let shown = repo.path().display().to_string();

    let mut ours = BTreeSet::new();
    let mut in_repo = Vec::with_capacity(publication.files.len());
    for file in &publication.files {
        let relative =
            relative_to(&workdir, &file.path).ok_or_else(|| PublishError::OutsideWorkTree {
                path: file.path.display().to_string(),
                workdir: workdir.display().to_string(),
            })?;
        ours.insert(relative.clone());
        in_repo.push(ChangedFile {
            path: relative,
            ..file.clone()
        });
    }

    let head_tree = head_tree(&repo, &shown)?;
    let unrelated = staged_paths(&repo, head_tree.as_ref())
        .map_err(|source| PublishError::Index {
            path: shown.clone(),
            source,
        })?
        .into_iter()
        .filter(|p| !ours.contains(Path::new(p)))
        .collect::<Vec<_>>();
    if !unrelated.is_empty() {
        return Err(PublishError::UnrelatedStaged { paths: unrelated });
    }

    // Who commits is checked before anything is staged.
    let signature = repo
        .signature()
        .map_err(|source| PublishError::NoIdentity { source })?;
    let mut index = repo.index().map_err(|source| PublishError::Index {
        path: shown.clone(),
        source,
    })?;
    for relative in &ours {
        let staged = if workdir.join(relative).symlink_metadata().is_ok() {
            index.add_path(relative)
        } else {
            index.remove_path(relative)
        };
        staged.map_err(|source| PublishError::Stage {
            path: relative.display().to_string(),
            source,
        })?;
    }
    index.write().map_err(|source| PublishError::Index {
        path: shown.clone(),
        source,
    })?;
    let tree_id = index.write_tree().map_err(|source| PublishError::Commit {
        path: shown.clone(),
        source,
    })?;
    if head_tree.as_ref().map(|t| t.id()) == Some(tree_id) {
        return Ok(Published::NothingChanged);
    }
    // The message lists what really differs from HEAD: a file reported as rewritten with the
    // same bytes is not mentioned, and the letter is git's.
    let actual = tree_changes(&repo, head_tree.as_ref(), tree_id).map_err(|source| {
        PublishError::Commit {
            path: shown.clone(),
            source,
        }
    })?;
    let in_repo: Vec<ChangedFile> = in_repo
        .into_iter()
        .filter_map(|file| {
            let change = *actual.get(&file.path)?;
            Some(ChangedFile { change, ..file })
        })
        .collect();

    let message = compose(&publication.subject, &in_repo);
    let commit =
        commit(&repo, &signature, tree_id, &message).map_err(|source| PublishError::Commit {
            path: shown.clone(),
            source,
        })?;
    let pushed_to = if options.push {
        Some(push::push_current_branch(&repo)?)
    } else {
        None
    };
    Ok(Published::Committed {
        commit: commit.to_string(),
        subject: message.subject,
        files: in_repo.len(),
        pushed_to,
    })
}

/// Paths whose staged content differs from HEAD (every staged path on an unborn branch).
fn staged_paths(
    repo: &Repository,
    head: Option<&git2::Tree<'_>>,
) -> Result<Vec<String>, git2::Error> {
    let diff = repo.diff_tree_to_index(head, None, None)?;
    let mut paths = BTreeSet::new();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(path) = file.path() {
                paths.insert(path.to_string_lossy().into_owned());
            }
        }
    }
    Ok(paths.into_iter().collect())
}

/// Every path that differs between `head` and the tree `new`, with how.
fn tree_changes(
    repo: &Repository,
    head: Option<&git2::Tree<'_>>,
    new: git2::Oid,
) -> Result<std::collections::BTreeMap<PathBuf, FileChange>, git2::Error> {
    let new = repo.find_tree(new)?;
    let diff = repo.diff_tree_to_tree(head, Some(&new), None)?;
    let mut out = std::collections::BTreeMap::new();
    for delta in diff.deltas() {
        let (file, change) = match delta.status() {
            git2::Delta::Added => (delta.new_file(), FileChange::Added),
            git2::Delta::Deleted => (delta.old_file(), FileChange::Deleted),
            _ => (delta.new_file(), FileChange::Modified),
        };
        if let Some(path) = file.path() {
            out.insert(path.to_path_buf(), change);
        }
    }
    Ok(out)
}

fn commit(
    repo: &Repository,
    signature: &Signature<'_>,
    tree_id: git2::Oid,
    message: &CommitMessage,
) -> Result<git2::Oid, git2::Error> {
    let tree = repo.find_tree(tree_id)?;
    let parent = match repo.head() {
        Ok(head) => Some(head.peel_to_commit()?),
        Err(_) => None,
    };
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(
        Some("HEAD"),
        signature,
        signature,
        &message.to_string(),
        &tree,
        &parents,
    )
}

/// `path` relative to the (canonical) work tree, resolving symlinks in the part of it that exists:
/// a deleted file's folder may be gone too.
fn relative_to(workdir: &Path, path: &Path) -> Option<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut missing = Vec::new();
    let mut existing = absolute.as_path();
    let canonical = loop {
        match existing.canonicalize() {
            Ok(canonical) => break canonical,
            Err(_) => {
                missing.push(existing.file_name()?.to_os_string());
                existing = existing.parent()?;
            }
        }
    };
    let mut resolved = canonical.strip_prefix(workdir).ok()?.to_path_buf();
    for part in missing.iter().rev() {
        resolved.push(part);
    }
    (!resolved.as_os_str().is_empty()).then_some(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_file_in_a_deleted_folder_is_still_located() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("hosts/pki")).unwrap();
        let gone = root.join("hosts/pki/nodes/old-node/kubelet-client.crt");
        assert_eq!(
            relative_to(&root, &gone),
            Some(PathBuf::from("hosts/pki/nodes/old-node/kubelet-client.crt"))
        );
        assert_eq!(
            relative_to(&root.join("hosts"), Path::new("/elsewhere")),
            None
        );
    }
}

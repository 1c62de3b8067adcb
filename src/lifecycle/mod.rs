//! The certificate lifecycle around the pipeline: the expiry report (`check`), the readable plan
//! diff, renewal of named leaves, and CA rotation with an overlap period.
//!
//! Issuing, sealing and writing the bundle belong to the pipeline (`issue`,
//! `seal`, `bundle`); this module decides and explains *when* and *which*:
//! which certificates are due, which leaves a `renew` names, which CA signs
//! and which ones are trusted during a rotation. It does not talk to git
//! (that is `publish`) and it never writes a plaintext key.

pub mod check;
pub mod diff;
pub mod renew;
pub mod rotation;
pub mod table;

pub use check::{CheckError, ExpiryReport, Standing, examine};

/// Whether standard output is a terminal, which decides colours.
pub fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdout().is_terminal()
}

/// Parses the hidden `--now` (RFC 3339) used by tests to look at the bundle from another day.
pub fn parse_now(text: Option<&str>) -> Result<time::OffsetDateTime, LifecycleError> {
    match text {
        None => Ok(time::OffsetDateTime::now_utc()),
        Some(text) => {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map_err(|e| LifecycleError::BadNow {
                    text: text.to_string(),
                    reason: e.to_string(),
                })
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(
        "--now `{text}` is not an RFC 3339 time ({reason}). Fix: write it like 2027-01-31T12:00:00Z."
    )]
    BadNow { text: String, reason: String },
    #[error("{0}")]
    Check(#[from] CheckError),
    #[error("{0}")]
    Rotation(#[from] rotation::RotationError),
    #[error("{0}")]
    Renew(#[from] renew::RenewError),
}

/// Checks before a run that its result can be committed (see [`crate::publish::preflight`]).
/// `None` when the inventory is not in a git repository: the run goes on and the caller says it
/// did not commit (a first experiment outside git is legitimate); `--push` there is an error.
pub fn prepare_publish(
    inventory: &crate::inventory::Inventory,
    options: crate::publish::PublishOptions,
) -> Result<Option<crate::publish::PublishOptions>, crate::publish::PublishError> {
    let dir = inventory.bundle_dir();
    let start = match inventory.base_dir() {
        p if p.as_os_str().is_empty() => std::path::Path::new("."),
        p => p,
    };
    let owned = [dir, inventory.path.clone()];
    match crate::publish::preflight(start, &owned, options) {
        Ok(()) => Ok(Some(options)),
        Err(crate::publish::PublishError::NotARepository { .. }) if !options.push => Ok(None),
        Err(e) => Err(e),
    }
}

/// Commits (and pushes) what a `recreate` or `renew` run changed: its bundle files with the
/// reason of each, and the inventory when the run recorded new CA pins in it.
/// The plan is computed only when there is something to commit, so a no-op run stays cheap.
pub fn publish_run(
    inventory: &crate::inventory::Inventory,
    outcome: &crate::bundle::Outcome,
    rotation: Option<rotation::Rotation>,
    options: crate::publish::PublishOptions,
) -> Result<crate::publish::Published, crate::publish::PublishError> {
    if !outcome.written && !outcome.pins_recorded {
        return Ok(crate::publish::Published::NothingChanged);
    }
    let plan = crate::plan::plan(inventory);
    let lines = if outcome.written {
        diff::lines_for(&plan, &outcome.changes, rotation)
    } else {
        Vec::new()
    };
    let pins = outcome
        .pins_recorded
        .then_some((inventory.path.as_path(), "CA pins ([pki.pins])"));
    let mut publication =
        diff::publication(&plan, &outcome.changes, &lines, &outcome.bundle_dir, pins);
    if !outcome.written {
        publication.files.retain(|f| f.path == inventory.path);
    }
    crate::publish::publish(&outcome.bundle_dir, &publication, options)
}

/// What to tell the operator about a publish.
pub fn describe_published(published: &crate::publish::Published) -> String {
    use crate::publish::Published;
    match published {
        Published::NothingChanged => "git: nothing to commit.".into(),
        Published::NotCommitted { files } => {
            format!("git: --no-commit, {files} changed file(s) left for you to review and commit.")
        }
        Published::Committed {
            commit,
            subject,
            files,
            pushed_to,
        } => {
            let short = commit.get(..12).unwrap_or(commit);
            let mut text = format!("git: committed {short} ({files} files): {subject}");
            if let Some(target) = pushed_to {
                text.push_str(&format!(
                    "\ngit: pushed to {} ({}) {}",
                    target.remote, target.url, target.reference
                ));
            }
            text
        }
    }
}

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
}

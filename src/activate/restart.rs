//! Scheduling restarts of exactly the units whose material changed.
//!
//! Under `nixos-rebuild`, units go into NixOS's activation restart list
//! (`/run/nixos/activation-restart-list`, one unit a line), which
//! switch-to-configuration reads after activation; the list is extended, not
//! replaced, and no unit appears twice. In systemd mode (a oneshot before the
//! services) `systemctl try-restart --no-block` restarts only units that run.
//! Deciding which units changed is [`super::changes`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::ActivateError;

/// How restarts are requested.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Restart {
    /// Only report the units.
    #[default]
    Report,
    /// Append to a restart list file.
    List(PathBuf),
    /// Run `systemctl try-restart`.
    Systemctl,
}

/// Requests restarts of `units` (already sorted and unique).
pub fn schedule(restart: &Restart, units: &[String]) -> Result<(), ActivateError> {
    if units.is_empty() {
        return Ok(());
    }
    match restart {
        Restart::Report => Ok(()),
        Restart::List(path) => {
            append_to_list(path, units).map_err(|source| ActivateError::RestartList {
                path: path.clone(),
                units: units.join(" "),
                source,
            })
        }
        Restart::Systemctl => try_restart(units),
    }
}

/// Adds the units the list does not have yet; keeps what is there.
pub fn append_to_list(path: &Path, units: &[String]) -> io::Result<()> {
    let existing = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let present: std::collections::BTreeSet<&str> = existing.lines().map(str::trim).collect();
    let missing: Vec<&String> = units
        .iter()
        .filter(|u| !present.contains(u.as_str()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut text = existing.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for unit in missing {
        text.push_str(unit);
        text.push('\n');
    }
    crate::atomic::write(path, text.as_bytes(), 0o644)
}

fn try_restart(units: &[String]) -> Result<(), ActivateError> {
    let failed = |reason: String| ActivateError::Systemctl {
        units: units.join(" "),
        reason,
    };
    let output = Command::new("systemctl")
        .arg("try-restart")
        .arg("--no-block")
        .arg("--")
        .args(units)
        .output()
        .map_err(|e| failed(format!("cannot run systemctl ({e})")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_each_unit_once() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("activation-restart-list");
        fs::write(&list, "nginx.service").unwrap();
        let units = vec!["etcd.service".to_string(), "nginx.service".to_string()];
        append_to_list(&list, &units).unwrap();
        append_to_list(&list, &units).unwrap();
        assert_eq!(
            fs::read_to_string(&list).unwrap(),
            "nginx.service\netcd.service\n"
        );
    }
}

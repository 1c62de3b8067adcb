//! CA rotation with an overlap period: the trust bundle each authority publishes at each step,
//! and the checks that a step may start.
//!
//! `--rotate-ca` issues a new CA per authority and asks the pipeline
//! (`RecreateOptions::trust`) to publish `[new, old]`: the new CA signs (so
//! every leaf is re-issued from it) and the old one stays in
//! `ca/<authority>.crt` behind it, so every component accepts leaves of both
//! while nodes are redeployed. `--finish-ca-rotation` publishes `[new]`. The
//! pins in `cluster.toml` follow the manifest's fingerprints, so they hold both
//! during the overlap. Issuing, sealing and the atomic swap are the
//! pipeline's; this module decides the trust bundles and refuses a step that
//! does not fit the bundle. The procedure is in docs/ca-rotation.md.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use crate::bundle::{Bundle, FileEntry, Manifest, TrustBundle};
use crate::issue::{CaCertificate, PrivateKey, issue_authority};
use crate::plan::{Authority, Plan};
use crate::seal::{Identities, unseal_named};

/// A step of CA rotation with overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rotation {
    /// New CAs sign; trust bundles hold the new and the old CA; every leaf is re-issued.
    Start,
    /// Trust bundles (and pins) drop the old CA.
    Finish,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(
        "there is no bundle at {path} to rotate. Fix: run `kubepki recreate` first; a new bundle gets new CAs anyway."
    )]
    NoBundle { path: String },
    #[error(
        "CA `{authority}` is still in the middle of a rotation (its trust bundle holds {count} CA certificates). Fix: deploy every node, then run `kubepki recreate --finish-ca-rotation` before starting another rotation."
    )]
    Unfinished { authority: Authority, count: usize },
    #[error(
        "no CA is being rotated: every trust bundle holds a single CA certificate. Fix: nothing to finish; `kubepki recreate --rotate-ca` starts a rotation."
    )]
    NothingToFinish,
    #[error(
        "{count} leaf certificate(s) are still signed by a CA being rotated out, e.g. {}; dropping that CA would break them. Fix: run `kubepki recreate --force`, deploy every node, then finish the rotation.",
        .examples.join(", ")
    )]
    LeavesOnPreviousCa { count: usize, examples: Vec<String> },
}

/// Checks that `step` may run on the bundle described by `manifest` (`None`: no bundle yet).
pub fn check_step(
    step: Rotation,
    manifest: Option<&Manifest>,
    bundle_dir: &std::path::Path,
) -> Result<(), RotationError> {
    let Some(manifest) = manifest else {
        return Err(RotationError::NoBundle {
            path: bundle_dir.display().to_string(),
        });
    };
    match step {
        Rotation::Start => {
            for (authority, entry) in &manifest.authorities {
                if entry.fingerprints.len() > 1 {
                    return Err(RotationError::Unfinished {
                        authority: *authority,
                        count: entry.fingerprints.len(),
                    });
                }
            }
            Ok(())
        }
        Rotation::Finish => {
            if manifest
                .authorities
                .values()
                .all(|e| e.fingerprints.len() <= 1)
            {
                return Err(RotationError::NothingToFinish);
            }
            let stale: Vec<String> = manifest
                .files
                .iter()
                .filter_map(|(path, entry)| match entry {
                    FileEntry::Certificate(c) => {
                        let signing = manifest
                            .authorities
                            .get(&c.issuer)
                            .and_then(|a| a.signing_fingerprint());
                        (signing != Some(c.issuer_fingerprint.as_str())).then(|| path.clone())
                    }
                    _ => None,
                })
                .collect();
            if stale.is_empty() {
                Ok(())
            } else {
                Err(RotationError::LeavesOnPreviousCa {
                    count: stale.len(),
                    examples: stale.into_iter().take(3).collect(),
                })
            }
        }
    }
}

/// The trust bundle every authority publishes for `step`, to pass as `RecreateOptions::trust`.
///
/// Start: a new CA (issued at `now`) signs, the current signing CA stays trusted behind it.
/// Finish: the current signing CA alone; its key is unsealed with `identities` because the
/// pipeline takes the signing key with the trust bundle.
pub fn trust_bundles(
    step: Rotation,
    bundle: &Bundle,
    plan: &Plan,
    identities: &[PathBuf],
    now: OffsetDateTime,
) -> Result<BTreeMap<Authority, TrustBundle>, crate::Error> {
    let loaded = match step {
        Rotation::Finish => Some(Identities::load_or_default(identities)?),
        Rotation::Start => None,
    };
    let mut out = BTreeMap::new();
    for authority in &plan.authorities {
        let current = CaCertificate::from_pem_bundle(
            authority.authority,
            &bundle.read(&authority.cert_file)?,
        )?;
        let Some(signing) = current.into_iter().next() else {
            continue;
        };
        let trust = match &loaded {
            None => {
                let new = issue_authority(authority, plan.algorithm, plan.ca_validity_days, now)?;
                TrustBundle {
                    signing: new.certificate.clone(),
                    key: new.key().clone(),
                    also_trusted: vec![signing],
                }
            }
            Some(ids) => {
                let sealed = bundle.read(&authority.key_file)?;
                let pem = unseal_named(&sealed, ids, &authority.key_file)?;
                TrustBundle {
                    signing,
                    key: PrivateKey::from_pem(&pem, authority.authority.name())?,
                    also_trusted: Vec::new(),
                }
            }
        };
        out.insert(authority.authority, trust);
    }
    Ok(out)
}

/// The trust fingerprints of `step`, for a preview (`kubepki plan`): no key is needed, and the
/// new CA of a start is a placeholder.
pub fn preview_trust(step: Rotation, manifest: &Manifest) -> BTreeMap<Authority, Vec<String>> {
    manifest
        .authorities
        .iter()
        .filter_map(|(authority, entry)| {
            let signing = entry.signing_fingerprint()?.to_string();
            let fingerprints = match step {
                Rotation::Start => vec![format!("sha256:new-{}-ca", authority.name()), signing],
                Rotation::Finish => vec![signing],
            };
            Some((*authority, fingerprints))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn manifest(fingerprints: &[&str], leaf_issuer: &str) -> Manifest {
        let json = serde_json::json!({
            "format": 1, "cluster": "t", "algorithm": "ecdsa-p256",
            "authorities": { "etcd": {
                "cert_file": "ca/etcd.crt", "key_file": "ca/etcd.key.age",
                "fingerprints": fingerprints, "not_after": "2035-01-01T00:00:00Z" } },
            "files": { "nodes/n/etcd-server.crt": {
                "kind": "certificate", "sha256": "00", "serial": "01",
                "not_before": "2025-01-01T00:00:00Z", "not_after": "2026-01-01T00:00:00Z",
                "issuer": "etcd", "issuer_fingerprint": leaf_issuer,
                "public_key_sha256": "00", "inputs": "sha256:00", "input_parts": {} } },
            "nodes": {}
        });
        Manifest::from_json(json.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_rotation_starts_once_and_finishes_only_when_every_leaf_moved() {
        let dir = Path::new("hosts/pki");
        assert!(matches!(
            check_step(Rotation::Start, None, dir),
            Err(RotationError::NoBundle { .. })
        ));
        let settled = manifest(&["sha256:new"], "sha256:new");
        assert!(check_step(Rotation::Start, Some(&settled), dir).is_ok());
        assert!(matches!(
            check_step(Rotation::Finish, Some(&settled), dir),
            Err(RotationError::NothingToFinish)
        ));
        let rotating = manifest(&["sha256:new", "sha256:old"], "sha256:new");
        assert!(matches!(
            check_step(Rotation::Start, Some(&rotating), dir),
            Err(RotationError::Unfinished { count: 2, .. })
        ));
        assert!(check_step(Rotation::Finish, Some(&rotating), dir).is_ok());
        let stale = manifest(&["sha256:new", "sha256:old"], "sha256:old");
        let error = check_step(Rotation::Finish, Some(&stale), dir).unwrap_err();
        assert!(
            error.to_string().contains("nodes/n/etcd-server.crt"),
            "{error}"
        );
    }
}

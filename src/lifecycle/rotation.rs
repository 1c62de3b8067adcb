//! CA rotation with an overlap period: the trust bundles of each step, and the checks that a
//! step may start.
//!
//! `--rotate-ca` makes the pipeline issue a new CA per authority and every
//! leaf again from it; the trust bundle (`ca/<authority>.crt`) then holds the
//! new CA first (it signs) and the previous one after it, so every component
//! accepts leaves of both while nodes are redeployed. `--finish-ca-rotation`
//! drops the previous CA. The pins in `cluster.toml` follow the manifest's
//! fingerprints, so they hold both during the overlap. This module only
//! composes trust bundles and checks preconditions; issuing, sealing and the
//! atomic swap are the pipeline's (`bundle::reconcile`). The procedure is in
//! docs/ca-rotation.md.

use crate::bundle::{FileEntry, Manifest, Rotation};
use crate::issue::{CaCertificate, IssueError};
use crate::plan::Authority;

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

/// The trust bundle for a newly issued signing CA: its PEM first, then the previous signing CA
/// from `previous_bundle` (empty when there is none, e.g. a brand-new authority). Returns the
/// PEM text and the fingerprints in file order.
pub fn overlapping_trust_bundle(
    signing: &CaCertificate,
    previous_bundle: &[u8],
) -> Result<(String, Vec<String>), IssueError> {
    let mut pem = signing.pem();
    let mut fingerprints = vec![signing.fingerprint.clone()];
    if !previous_bundle.is_empty() {
        let previous = CaCertificate::from_pem_bundle(signing.authority, previous_bundle)?;
        if let Some(old) = previous
            .into_iter()
            .next()
            .filter(|old| old.fingerprint != signing.fingerprint)
        {
            pem.push_str(&old.pem());
            fingerprints.push(old.fingerprint);
        }
    }
    Ok((pem, fingerprints))
}

/// The trust bundle once a rotation is finished: only its first (signing) CA, and that CA.
pub fn retired_trust_bundle(
    authority: Authority,
    bundle: &[u8],
) -> Result<(String, CaCertificate), IssueError> {
    let signing = CaCertificate::from_pem_bundle(authority, bundle)?
        .into_iter()
        .next()
        .ok_or_else(|| IssueError::BadAuthorityCertificate {
            authority: authority.name().to_string(),
            reason: "the trust bundle holds no certificate".into(),
        })?;
    Ok((signing.pem(), signing))
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

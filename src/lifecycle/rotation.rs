//! CA rotation in three deployments: the trust bundle each authority publishes at each step,
//! and the checks that a step may start.
//!
//! 1. `--rotate-ca` ("trust") issues a new CA per authority and publishes
//!    `[old, new]`: the old CA still signs (no leaf changes), the new one is
//!    trusted and recorded as `pending` in the manifest, its key sealed to the
//!    CA key holders in `ca/<authority>.next.key.age`.
//! 2. `--sign-with-new-ca` ("sign") makes the pending CA the signing one,
//!    publishes `[new, old]` and so re-issues every leaf from it. Every node
//!    already trusts it since step 1, so there is no window during the rollout.
//! 3. `--finish-ca-rotation` publishes `[new]`.
//!
//! The pins in `cluster.toml` follow the manifest's fingerprints, so they hold
//! both from step 1 to step 3. Issuing, sealing and the atomic swap are the
//! pipeline's (`RecreateOptions::trust`); this module decides the trust
//! bundles and refuses a step that does not fit the bundle. The procedure is
//! in docs/ca-rotation.md.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use crate::bundle::{Bundle, FileEntry, Manifest, PendingCa, TrustBundle};
use crate::issue::{CaCertificate, PrivateKey, issue_authority};
use crate::plan::{Authority, Plan};
use crate::seal::{Identities, unseal_named};

/// A step of a CA rotation (docs/ca-rotation.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rotation {
    /// Step 1: new CAs join the trust bundles behind the old ones, which still sign.
    Start,
    /// Step 2: the new CAs sign; every leaf is re-issued; the old CAs stay trusted.
    Sign,
    /// Step 3: trust bundles (and pins) drop the old CA.
    Finish,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(
        "there is no bundle at {path} to rotate. Fix: run `kubepki recreate` first; a new bundle gets new CAs anyway."
    )]
    NoBundle { path: String },
    #[error(
        "CA `{authority}` is already being rotated: its new CA is trusted but does not sign yet (step 1 of 3 is done). Fix: deploy every node, then run `kubepki recreate --sign-with-new-ca` (step 2)."
    )]
    Pending { authority: Authority },
    #[error(
        "CA `{authority}` is still in the middle of a rotation (its trust bundle holds {count} CA certificates and the new one signs; step 2 of 3 is done). Fix: deploy every node, then run `kubepki recreate --finish-ca-rotation` (step 3) before starting another rotation."
    )]
    Unfinished { authority: Authority, count: usize },
    #[error(
        "no new CA is waiting to sign: CA `{authority}` has no pending CA. Fix: start a rotation with `kubepki recreate --rotate-ca` (step 1) and deploy every node first; if the new CA already signs, finish with `kubepki recreate --finish-ca-rotation`."
    )]
    NothingToSign { authority: Authority },
    #[error(
        "the new CA of `{authority}` is trusted but does not sign yet, so finishing now would drop the wrong CA. Fix: deploy every node, run `kubepki recreate --sign-with-new-ca` (step 2), deploy every node again, then finish."
    )]
    NotSigningYet { authority: Authority },
    #[error(
        "no CA is being rotated: every trust bundle holds a single CA certificate. Fix: nothing to finish; `kubepki recreate --rotate-ca` starts a rotation."
    )]
    NothingToFinish,
    #[error(
        "{count} leaf certificate(s) are still signed by a CA being rotated out, e.g. {}; dropping that CA would break them. Fix: run `kubepki recreate --force`, deploy every node, then finish the rotation.",
        .examples.join(", ")
    )]
    LeavesOnPreviousCa { count: usize, examples: Vec<String> },
    #[error(
        "the pending CA of `{authority}` ({fingerprint}) is not in its trust bundle {path}. Fix: restore the bundle from git (`git checkout -- {path}`), or abandon the rotation with `git revert` of the step-1 commit."
    )]
    PendingMissing {
        authority: Authority,
        fingerprint: String,
        path: String,
    },
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
                if entry.pending.is_some() {
                    return Err(RotationError::Pending {
                        authority: *authority,
                    });
                }
                if entry.fingerprints.len() > 1 {
                    return Err(RotationError::Unfinished {
                        authority: *authority,
                        count: entry.fingerprints.len(),
                    });
                }
            }
            Ok(())
        }
        Rotation::Sign => {
            for (authority, entry) in &manifest.authorities {
                if entry.pending.is_none() {
                    return Err(RotationError::NothingToSign {
                        authority: *authority,
                    });
                }
            }
            Ok(())
        }
        Rotation::Finish => {
            if let Some((authority, _)) = manifest
                .authorities
                .iter()
                .find(|(_, e)| e.pending.is_some())
            {
                return Err(RotationError::NotSigningYet {
                    authority: *authority,
                });
            }
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
/// Start: the current signing CA keeps signing, a new CA (issued at `now`) is pending behind it.
/// Sign: the pending CA signs (its key unsealed from `ca/<authority>.next.key.age`), the old one
/// stays trusted behind it. Finish: the current signing CA alone. Every step unseals a CA key
/// with `identities`, because the pipeline takes the signing key with the trust bundle.
pub fn trust_bundles(
    step: Rotation,
    bundle: &Bundle,
    plan: &Plan,
    identities: &[PathBuf],
    now: OffsetDateTime,
) -> Result<BTreeMap<Authority, TrustBundle>, crate::Error> {
    let ids = Identities::load_or_default(identities)?;
    let unseal = |key_file: &str, authority: Authority| -> Result<PrivateKey, crate::Error> {
        let sealed = bundle.read(key_file)?;
        let pem = unseal_named(&sealed, &ids, key_file)?;
        Ok(PrivateKey::from_pem(&pem, authority.name())?)
    };
    let mut out = BTreeMap::new();
    for authority in &plan.authorities {
        let current = CaCertificate::from_pem_bundle(
            authority.authority,
            &bundle.read(&authority.cert_file)?,
        )?;
        let Some(entry) = bundle.manifest.authorities.get(&authority.authority) else {
            continue;
        };
        let mut current = current.into_iter();
        let Some(signing) = current.next() else {
            continue;
        };
        let trust = match step {
            Rotation::Start => {
                let new = issue_authority(authority, plan.algorithm, plan.ca_validity_days, now)?;
                TrustBundle {
                    signing,
                    key: unseal(&authority.key_file, authority.authority)?,
                    also_trusted: Vec::new(),
                    pending: Some(PendingCa {
                        certificate: new.certificate.clone(),
                        key: new.key().clone(),
                    }),
                }
            }
            Rotation::Sign => {
                let fingerprint = entry.pending.clone().unwrap_or_default();
                let Some(new) = current.find(|c| c.fingerprint == fingerprint) else {
                    return Err(crate::lifecycle::LifecycleError::from(
                        RotationError::PendingMissing {
                            authority: authority.authority,
                            fingerprint,
                            path: authority.cert_file.clone(),
                        },
                    )
                    .into());
                };
                TrustBundle {
                    signing: new,
                    key: unseal(&entry.next_key_file(), authority.authority)?,
                    also_trusted: vec![signing],
                    pending: None,
                }
            }
            Rotation::Finish => TrustBundle {
                signing,
                key: unseal(&authority.key_file, authority.authority)?,
                also_trusted: Vec::new(),
                pending: None,
            },
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
                Rotation::Start => vec![signing, format!("sha256:new-{}-ca", authority.name())],
                Rotation::Sign => {
                    let pending = entry.pending.clone()?;
                    vec![pending, signing]
                }
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
        pending_manifest(fingerprints, None, leaf_issuer)
    }

    fn pending_manifest(
        fingerprints: &[&str],
        pending: Option<&str>,
        leaf_issuer: &str,
    ) -> Manifest {
        let mut json = serde_json::json!({
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
        if let Some(pending) = pending {
            json["authorities"]["etcd"]["pending"] = pending.into();
        }
        Manifest::from_json(json.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn the_three_steps_run_only_in_order() {
        let dir = Path::new("hosts/pki");
        let settled = manifest(&["sha256:old"], "sha256:old");
        assert!(matches!(
            check_step(Rotation::Sign, Some(&settled), dir),
            Err(RotationError::NothingToSign { .. })
        ));
        let trusting = pending_manifest(
            &["sha256:old", "sha256:new"],
            Some("sha256:new"),
            "sha256:old",
        );
        assert!(check_step(Rotation::Sign, Some(&trusting), dir).is_ok());
        for step in [Rotation::Start, Rotation::Finish] {
            let error = check_step(step, Some(&trusting), dir).unwrap_err();
            assert!(error.to_string().contains("--sign-with-new-ca"), "{error}");
        }
        assert_eq!(
            preview_trust(Rotation::Sign, &trusting)[&Authority::Etcd],
            vec!["sha256:new".to_string(), "sha256:old".to_string()]
        );
        assert_eq!(
            preview_trust(Rotation::Start, &settled)[&Authority::Etcd],
            vec!["sha256:old".to_string(), "sha256:new-etcd-ca".to_string()]
        );
        let signing = manifest(&["sha256:new", "sha256:old"], "sha256:new");
        let error = check_step(Rotation::Sign, Some(&signing), dir).unwrap_err();
        assert!(
            error.to_string().contains("--finish-ca-rotation"),
            "{error}"
        );
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

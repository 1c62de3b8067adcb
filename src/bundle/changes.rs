//! What a run must change: a pure function from (plan, manifest, recipients, now) to [`Changes`].
//!
//! Nothing here reads files, decrypts or signs; the writer in
//! [`super::reconcile`] and the lifecycle commands (`plan`, `check`, `renew`,
//! CA rotation) all act on this one decision. A certificate is kept when its
//! inputs are unchanged, its issuer is the signing CA of its authority, and
//! it is outside the renewal window; a sealed key is re-sealed when its
//! recipients changed; files no longer planned are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::manifest::{AuthorityEntry, CertificateInputs, FileEntry, InputPart, Manifest};
use crate::plan::{Authority, Plan};
use crate::seal::Keyring;

/// Why a certificate is issued again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Reason {
    /// Its subject, SANs, usages, issuer, algorithm or validity changed.
    InputsChanged { parts: Vec<InputPart> },
    /// It expires inside the renewal window.
    Expiring { not_after: String },
    /// It was signed by a CA that is no longer the signing CA of its authority.
    IssuerChanged,
    /// `--force` (or `renew`) asked for it.
    Forced,
    /// A CA rotation step changes the authority's trust bundle (and maybe its signing CA).
    TrustChanged,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InputsChanged { parts } if parts.is_empty() => f.write_str("inputs changed"),
            Reason::InputsChanged { parts } => {
                let names: Vec<&str> = parts.iter().map(|p| p.label()).collect();
                write!(f, "inputs changed: {}", names.join(", "))
            }
            Reason::Expiring { not_after } => write!(f, "expiring (not after {not_after})"),
            Reason::IssuerChanged => f.write_str("issuer changed"),
            Reason::Forced => f.write_str("forced"),
            Reason::TrustChanged => f.write_str("CA rotation: trust bundle changed"),
        }
    }
}

/// How to decide; the defaults are what `recreate` does.
#[derive(Debug, Clone, Default)]
pub struct ChangeOptions {
    /// Re-issue a certificate that expires within this many days.
    pub renew_before_days: u32,
    /// Re-issue every leaf certificate (CAs stay).
    pub force: bool,
    /// The signing CA per authority (`sha256:` fingerprint); by default the first
    /// fingerprint of the manifest. CA rotation sets the new CA here, so every
    /// leaf signed by the old one is re-issued.
    pub signing: BTreeMap<Authority, String>,
    /// The trust bundle an authority must publish (fingerprints, signing CA first),
    /// for CA rotation: `[new, old]` while both are trusted, then `[new]`. An
    /// authority whose manifest differs is re-issued with [`Reason::TrustChanged`];
    /// its first fingerprint is its signing CA unless `signing` says otherwise.
    pub trust: BTreeMap<Authority, Vec<String>>,
    /// Leaf certificates to re-issue whatever their state (`kubepki renew`), by id.
    pub renew: BTreeSet<String>,
}

/// Everything a run changes, by material id (`ca/<authority>`, a certificate id, a secret id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Material that does not exist yet.
    pub added: Vec<String>,
    /// Certificates issued again, with why.
    pub reissued: Vec<(String, Reason)>,
    /// Material whose key is sealed again to a changed recipient set (the certificate stays).
    pub resealed: Vec<String>,
    /// Bundle files no longer planned (a removed node's, for instance).
    pub removed: Vec<String>,
    /// Material left exactly as it is.
    pub kept: Vec<String>,
    /// The manifest's node descriptions or header differ from the plan's.
    pub manifest_changed: bool,
}

impl Changes {
    /// Nothing to write at all.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.reissued.is_empty()
            && self.resealed.is_empty()
            && self.removed.is_empty()
            && !self.manifest_changed
    }

    /// Whether material `id` gets new key and certificate (added or re-issued).
    pub fn is_issued(&self, id: &str) -> bool {
        self.added.iter().any(|a| a == id) || self.reissued.iter().any(|(r, _)| r == id)
    }

    pub fn is_resealed(&self, id: &str) -> bool {
        self.resealed.iter().any(|r| r == id)
    }
}

/// The material id of an authority: `ca/<name>`.
pub fn authority_id(authority: Authority) -> String {
    format!("ca/{}", authority.name())
}

/// Decides what changes between `manifest` (the bundle as it is, `None` if there is none) and `plan`.
pub fn compute(
    plan: &Plan,
    manifest: Option<&Manifest>,
    keyring: &Keyring,
    now: OffsetDateTime,
    options: &ChangeOptions,
) -> Changes {
    let mut changes = Changes::default();
    let empty = Manifest {
        format: super::manifest::FORMAT,
        cluster: String::new(),
        algorithm: plan.algorithm,
        authorities: BTreeMap::new(),
        files: BTreeMap::new(),
        nodes: BTreeMap::new(),
    };
    let old = manifest.unwrap_or(&empty);
    let mut planned: BTreeSet<&str> = BTreeSet::new();

    let sealed_changed = |key_file: &str, holders: &[String]| -> bool {
        old.sealed_key(key_file)
            .is_none_or(|e| e.recipients_sha256 != keyring.summary(holders).sha256)
    };

    // Authorities: kept when present; only their key may be re-sealed.
    let mut signing: BTreeMap<Authority, Option<String>> = BTreeMap::new();
    let mut next_keys: Vec<String> = Vec::new();
    for authority in &plan.authorities {
        let id = authority_id(authority.authority);
        planned.insert(&authority.cert_file);
        planned.insert(&authority.key_file);
        // A pending CA's key stays until a rotation step republishes the authority.
        let kept_next_key = old
            .authorities
            .get(&authority.authority)
            .filter(|e| e.pending.is_some() && !options.trust.contains_key(&authority.authority))
            .map(AuthorityEntry::next_key_file);
        if let Some(next) = &kept_next_key {
            next_keys.push(next.clone());
        }
        let present = old.authorities.get(&authority.authority).filter(|_| {
            matches!(
                old.files.get(&authority.cert_file),
                Some(FileEntry::TrustBundle(_))
            ) && old.sealed_key(&authority.key_file).is_some()
        });
        match present {
            None => {
                changes.added.push(id);
                signing.insert(authority.authority, None);
            }
            Some(entry) => {
                let trust = options.trust.get(&authority.authority);
                let fingerprint = options
                    .signing
                    .get(&authority.authority)
                    .cloned()
                    .or_else(|| trust.and_then(|t| t.first().cloned()))
                    .or_else(|| entry.signing_fingerprint().map(str::to_string));
                signing.insert(authority.authority, fingerprint);
                if trust.is_some_and(|t| *t != entry.fingerprints) {
                    changes.reissued.push((id, Reason::TrustChanged));
                } else if sealed_changed(&authority.key_file, &authority.key_holders)
                    || kept_next_key
                        .as_deref()
                        .is_some_and(|next| sealed_changed(next, &authority.key_holders))
                {
                    // The pending CA's key goes to the same holders as the signing one's.
                    changes.resealed.push(id);
                } else {
                    changes.kept.push(id);
                }
            }
        }
    }

    let renew_before = time::Duration::days(i64::from(options.renew_before_days));
    for certificate in &plan.certificates {
        planned.insert(&certificate.cert_file);
        planned.insert(&certificate.key_file);
        let id = certificate.id.clone();
        let (Some(entry), Some(_)) = (
            old.certificate(&certificate.cert_file),
            old.sealed_key(&certificate.key_file),
        ) else {
            changes.added.push(id);
            continue;
        };
        let inputs = CertificateInputs::of(plan, certificate);
        let signing_fingerprint = signing.get(&certificate.issuer).cloned().flatten();
        let reason = if entry.inputs != inputs.digest() {
            let now_parts = inputs.parts();
            let parts = InputPart::ALL
                .into_iter()
                .filter(|p| entry.input_parts.get(p.name()) != now_parts.get(p.name()))
                .collect();
            Some(Reason::InputsChanged { parts })
        } else if signing_fingerprint.as_deref() != Some(entry.issuer_fingerprint.as_str()) {
            Some(Reason::IssuerChanged)
        } else if OffsetDateTime::parse(&entry.not_after, &Rfc3339)
            .map_or(true, |not_after| not_after - now < renew_before)
        {
            Some(Reason::Expiring {
                not_after: entry.not_after.clone(),
            })
        } else if options.force || options.renew.contains(&certificate.id) {
            Some(Reason::Forced)
        } else {
            None
        };
        match reason {
            Some(reason) => changes.reissued.push((id, reason)),
            None if sealed_changed(&certificate.key_file, &certificate.key_holders) => {
                changes.resealed.push(id)
            }
            None => changes.kept.push(id),
        }
    }

    for secret in &plan.secrets {
        planned.insert(&secret.key_file);
        if let Some(public) = &secret.public_file {
            planned.insert(public);
        }
        let present = old.sealed_key(&secret.key_file).is_some()
            && secret
                .public_file
                .as_ref()
                .is_none_or(|p| matches!(old.files.get(p), Some(FileEntry::PublicKey(_))));
        if !present {
            changes.added.push(secret.id.clone());
        } else if sealed_changed(&secret.key_file, &secret.key_holders) {
            changes.resealed.push(secret.id.clone());
        } else {
            changes.kept.push(secret.id.clone());
        }
    }

    changes.removed = old
        .files
        .keys()
        .filter(|path| !planned.contains(path.as_str()) && !next_keys.contains(path))
        .cloned()
        .collect();
    changes.manifest_changed = manifest.is_none_or(|m| {
        m.format != super::manifest::FORMAT
            || m.cluster != plan.cluster
            || m.algorithm != plan.algorithm
            || m.nodes.len() != plan.nodes.len()
            || plan.nodes.iter().any(|n| m.nodes.get(&n.name) != Some(n))
    });
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::{
        AuthorityEntry, CertificateEntry, SealedKeyEntry, TrustBundleEntry,
    };
    use crate::inventory::Inventory;

    fn example() -> (Inventory, Plan, Keyring) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hosts/cluster.toml");
        let inventory = Inventory::load(&path).unwrap();
        let plan = crate::plan::plan(&inventory);
        let keyring = Keyring::from_inventory(&inventory).unwrap();
        (inventory, plan, keyring)
    }

    fn ca_fingerprint(authority: Authority) -> String {
        format!("sha256:{}", authority.name())
    }

    /// A manifest as if `plan` had just been issued, every leaf expiring on `not_after`.
    fn issued(plan: &Plan, keyring: &Keyring, not_after: &str) -> Manifest {
        let mut files = BTreeMap::new();
        let mut authorities = BTreeMap::new();
        let sealed = |holders: &[String]| {
            let summary = keyring.summary(holders);
            FileEntry::SealedKey(SealedKeyEntry {
                sha256: String::new(),
                recipients: summary.labels,
                recipients_sha256: summary.sha256,
            })
        };
        for a in &plan.authorities {
            let fingerprints = vec![ca_fingerprint(a.authority)];
            files.insert(
                a.cert_file.clone(),
                FileEntry::TrustBundle(TrustBundleEntry {
                    sha256: String::new(),
                    authority: a.authority,
                    fingerprints: fingerprints.clone(),
                }),
            );
            files.insert(a.key_file.clone(), sealed(&a.key_holders));
            authorities.insert(
                a.authority,
                AuthorityEntry {
                    cert_file: a.cert_file.clone(),
                    key_file: a.key_file.clone(),
                    fingerprints,
                    not_after: "2099-01-01T00:00:00Z".into(),
                    pending: None,
                },
            );
        }
        for c in &plan.certificates {
            let inputs = CertificateInputs::of(plan, c);
            files.insert(
                c.cert_file.clone(),
                FileEntry::Certificate(CertificateEntry {
                    sha256: String::new(),
                    serial: "01".into(),
                    not_before: "2026-01-01T00:00:00Z".into(),
                    not_after: not_after.into(),
                    issuer: c.issuer,
                    issuer_fingerprint: ca_fingerprint(c.issuer),
                    public_key_sha256: String::new(),
                    inputs: inputs.digest(),
                    input_parts: inputs.parts(),
                }),
            );
            files.insert(c.key_file.clone(), sealed(&c.key_holders));
        }
        for s in &plan.secrets {
            files.insert(s.key_file.clone(), sealed(&s.key_holders));
            if let Some(p) = &s.public_file {
                files.insert(
                    p.clone(),
                    FileEntry::PublicKey(crate::bundle::manifest::PublicKeyEntry {
                        sha256: String::new(),
                    }),
                );
            }
        }
        Manifest {
            format: crate::bundle::manifest::FORMAT,
            cluster: plan.cluster.clone(),
            algorithm: plan.algorithm,
            authorities,
            files,
            nodes: Manifest::nodes_of(plan),
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-06-01T00:00:00Z", &Rfc3339).unwrap()
    }

    fn options() -> ChangeOptions {
        ChangeOptions {
            renew_before_days: 30,
            ..ChangeOptions::default()
        }
    }

    #[test]
    fn without_a_bundle_everything_is_added() {
        let (_, plan, keyring) = example();
        let changes = compute(&plan, None, &keyring, now(), &options());
        assert_eq!(
            changes.added.len(),
            plan.authorities.len() + plan.certificates.len() + plan.secrets.len()
        );
        assert!(changes.manifest_changed);
    }

    #[test]
    fn an_up_to_date_bundle_has_nothing_to_do() {
        let (_, plan, keyring) = example();
        let manifest = issued(&plan, &keyring, "2027-01-01T00:00:00Z");
        let changes = compute(&plan, Some(&manifest), &keyring, now(), &options());
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(changes.kept.len(), plan.sealed_key_count());
    }

    #[test]
    fn a_changed_san_reissues_only_that_certificate_and_names_the_sans() {
        let (_, mut plan, keyring) = example();
        let manifest = issued(&plan, &keyring, "2027-01-01T00:00:00Z");
        let apiserver = plan
            .certificates
            .iter_mut()
            .find(|c| c.id == "nodes/ec2-controlplane/apiserver")
            .unwrap();
        apiserver
            .sans
            .push(crate::plan::San::Dns("api.example".into()));
        let changes = compute(&plan, Some(&manifest), &keyring, now(), &options());
        assert_eq!(
            changes.reissued,
            vec![(
                "nodes/ec2-controlplane/apiserver".to_string(),
                Reason::InputsChanged {
                    parts: vec![InputPart::Sans]
                }
            )]
        );
        assert_eq!(changes.reissued[0].1.to_string(), "inputs changed: SANs");
    }

    #[test]
    fn certificates_inside_the_renewal_window_are_reissued_as_expiring() {
        let (_, plan, keyring) = example();
        let manifest = issued(&plan, &keyring, "2026-06-20T00:00:00Z");
        let changes = compute(&plan, Some(&manifest), &keyring, now(), &options());
        assert_eq!(changes.reissued.len(), plan.certificates.len());
        assert!(matches!(changes.reissued[0].1, Reason::Expiring { .. }));
        // The CAs and secrets stay.
        assert_eq!(
            changes.kept.len(),
            plan.authorities.len() + plan.secrets.len()
        );
    }

    #[test]
    fn a_new_signing_ca_reissues_the_leaves_it_signs() {
        let (_, plan, keyring) = example();
        let manifest = issued(&plan, &keyring, "2027-01-01T00:00:00Z");
        let mut opts = options();
        opts.signing
            .insert(Authority::Etcd, "sha256:new-etcd-ca".to_string());
        let changes = compute(&plan, Some(&manifest), &keyring, now(), &opts);
        let etcd_leaves = plan
            .certificates
            .iter()
            .filter(|c| c.issuer == Authority::Etcd)
            .count();
        assert_eq!(changes.reissued.len(), etcd_leaves);
        assert!(
            changes
                .reissued
                .iter()
                .all(|(_, r)| *r == Reason::IssuerChanged)
        );
    }

    #[test]
    fn force_reissues_every_leaf_but_keeps_the_cas() {
        let (_, plan, keyring) = example();
        let manifest = issued(&plan, &keyring, "2027-01-01T00:00:00Z");
        let mut opts = options();
        opts.force = true;
        let changes = compute(&plan, Some(&manifest), &keyring, now(), &opts);
        assert_eq!(changes.reissued.len(), plan.certificates.len());
        assert!(changes.kept.contains(&"ca/kubernetes".to_string()));
    }

    #[test]
    fn a_changed_recipient_set_reseals_without_reissuing() {
        let (_, plan, keyring) = example();
        let mut manifest = issued(&plan, &keyring, "2027-01-01T00:00:00Z");
        if let Some(FileEntry::SealedKey(e)) = manifest
            .files
            .get_mut("nodes/laptop-old/kube-proxy.key.age")
        {
            e.recipients_sha256 = "stale".into();
        }
        let changes = compute(&plan, Some(&manifest), &keyring, now(), &options());
        assert_eq!(
            changes.resealed,
            vec!["nodes/laptop-old/kube-proxy".to_string()]
        );
        assert!(changes.reissued.is_empty());
    }
    #[test]
    fn a_pending_ca_key_sealed_to_other_holders_reseals_its_authority() {
        let (_, plan, keyring) = example();
        let mut manifest = issued(&plan, &keyring, "2027-01-01T00:00:00Z");
        // Step 1 of a rotation, then the CA key re-sealed but not the pending one (as an
        // older kubepki left it after a change of operators).
        let entry = manifest.authorities.get_mut(&Authority::Etcd).unwrap();
        entry.pending = Some("sha256:pending-etcd-ca".into());
        let next = entry.next_key_file();
        let mut stale = manifest.files[&entry.key_file].clone();
        if let FileEntry::SealedKey(e) = &mut stale {
            e.recipients_sha256 = "stale".into();
        }
        manifest.files.insert(next.clone(), stale);
        let changes = compute(&plan, Some(&manifest), &keyring, now(), &options());
        assert_eq!(changes.resealed, vec!["ca/etcd".to_string()]);
        assert!(changes.removed.is_empty(), "the pending key stays");

        let up_to_date = manifest.files[&manifest.authorities[&Authority::Etcd].key_file].clone();
        manifest.files.insert(next, up_to_date);
        let changes = compute(&plan, Some(&manifest), &keyring, now(), &options());
        assert!(changes.is_empty(), "{changes:?}");
    }
}

//! `kubepki recreate`: bring the bundle in line with the plan, touching only what changed.
//!
//! Order of effects: decide ([`super::compute`]), unseal what must be reused
//! (CA keys to sign with, keys to re-seal), issue, seal, then write the
//! whole new bundle through a [`Transaction`] and finally record the CA pins
//! in the inventory. Validation and every cryptographic step happen before
//! the first byte is written, so a failure leaves the old bundle untouched.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

use rayon::prelude::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use super::BundleError;
use super::changes::{ChangeOptions, Changes, authority_id, compute};
use super::manifest::{
    AuthorityEntry, CertificateEntry, CertificateInputs, FileEntry, Manifest, PublicKeyEntry,
    SealedKeyEntry, TrustBundleEntry,
};
use super::store::{Bundle, BundleLock, StagedFile, Transaction};
use crate::Error;
use crate::inventory::Inventory;
use crate::issue::{
    CaCertificate, IssuedCertificate, IssuedSecret, PrivateKey, SigningAuthority, issue_authority,
    issue_leaves_keeping, issue_secret,
};
use crate::plan::{Authority, NodePlan, Plan, plan};
use crate::seal::{Identities, Keyring, unseal_named};

/// How `recreate` runs.
#[derive(Debug, Clone, Default)]
pub struct RecreateOptions {
    /// Re-issue every leaf certificate (the CAs stay).
    pub force: bool,
    /// Identities that can decrypt CA keys and keys to re-seal; empty: the defaults
    /// (`$AGE_IDENTITY`, `~/.ssh/id_ed25519`, `~/.ssh/id_rsa`, `~/.config/age/keys.txt`).
    pub identities: Vec<PathBuf>,
    /// The time to issue at; `None` is now.
    pub now: Option<OffsetDateTime>,
    /// The signing CA per authority (fingerprint), for CA rotation; default: the manifest's first.
    pub signing: BTreeMap<Authority, String>,
    /// CA rotation: the trust bundle to publish per authority, see [`TrustBundle`].
    pub trust: BTreeMap<Authority, TrustBundle>,
    /// Do not record the CA pins in the inventory.
    pub skip_pins: bool,
    /// Leaf certificates to re-issue whatever their state (`kubepki renew`), by id.
    pub renew: BTreeSet<String>,
    /// Re-issued leaves keep their private key (unsealed with the identities) instead of a new one.
    pub keep_keys: bool,
    /// Testing hook: stop as if killed after this many filesystem steps.
    #[doc(hidden)]
    pub fault_after_writes: Option<usize>,
}

/// The CAs an authority publishes during a rotation, e.g. `[new, old]`, then `[new]`.
///
/// `signing` signs every leaf from now on (leaves signed by another CA are
/// re-issued) and its key is sealed as the authority's key; `also_trusted`
/// stay in the trust bundle so nodes accept both until every leaf is new.
///
/// `pending` (step 1 of a staged rotation) is a new CA that is trusted, right
/// behind the signing one, but does not sign yet: its key is sealed to the
/// authority's key holders in the authority's `next_key_file`, and the
/// manifest records its fingerprint as `pending`.
#[derive(Debug, Clone)]
pub struct TrustBundle {
    pub signing: CaCertificate,
    pub key: PrivateKey,
    pub also_trusted: Vec<CaCertificate>,
    pub pending: Option<PendingCa>,
}

/// A CA that is published in the trust bundle before it signs, with its key.
#[derive(Debug, Clone)]
pub struct PendingCa {
    pub certificate: CaCertificate,
    pub key: PrivateKey,
}

impl TrustBundle {
    fn certificates(&self) -> impl Iterator<Item = &CaCertificate> {
        std::iter::once(&self.signing)
            .chain(self.pending.as_ref().map(|p| &p.certificate))
            .chain(&self.also_trusted)
    }

    /// Fingerprints in trust-bundle order, signing CA first, then a pending one.
    pub fn fingerprints(&self) -> Vec<String> {
        self.certificates().map(|c| c.fingerprint.clone()).collect()
    }

    /// The PEM trust bundle file, signing CA first, then a pending one.
    pub fn pem(&self) -> String {
        self.certificates().map(CaCertificate::pem).collect()
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub bundle_dir: PathBuf,
    pub changes: Changes,
    /// Whether the bundle folder was replaced (false: nothing to do).
    pub written: bool,
    /// Whether `[pki.pins]` of the inventory was updated.
    pub pins_recorded: bool,
}

fn now_or(options_now: Option<OffsetDateTime>) -> OffsetDateTime {
    let now = options_now.unwrap_or_else(OffsetDateTime::now_utc);
    now.replace_nanosecond(0).unwrap_or(now)
}

fn change_options(inventory: &Inventory, options: &RecreateOptions) -> ChangeOptions {
    ChangeOptions {
        renew_before_days: inventory.spec.pki.renew_before_days,
        force: options.force,
        signing: options.signing.clone(),
        trust: options
            .trust
            .iter()
            .map(|(a, t)| (*a, t.fingerprints()))
            .collect(),
        renew: options.renew.clone(),
    }
}

/// What `recreate` would change now, without taking the lock or writing anything.
pub fn pending_changes(
    inventory: &Inventory,
    options: &RecreateOptions,
) -> Result<(Option<Bundle>, Changes), Error> {
    let plan = plan(inventory);
    let keyring = Keyring::from_inventory(inventory)?;
    let bundle = Bundle::open_if_exists(&inventory.bundle_dir())?;
    let changes = compute(
        &plan,
        bundle.as_ref().map(|b| &b.manifest),
        &keyring,
        now_or(options.now),
        &change_options(inventory, options),
    );
    Ok((bundle, changes))
}

/// Issues, seals and writes whatever the plan needs that the bundle lacks; see the module docs.
pub fn recreate(inventory: &Inventory, options: &RecreateOptions) -> Result<Outcome, Error> {
    let mut plan = plan(inventory);
    let keyring = Keyring::from_inventory(inventory)?;
    let now = now_or(options.now);
    let dir = inventory.bundle_dir();
    let lock = BundleLock::acquire(&dir)?;
    let old = Bundle::open_if_exists(&dir)?;
    if old.is_none() && std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(BundleError::NotABundle {
            path: dir.display().to_string(),
        }
        .into());
    }
    let changes = compute(
        &plan,
        old.as_ref().map(|b| &b.manifest),
        &keyring,
        now,
        &change_options(inventory, options),
    );
    if changes.is_empty() {
        let pins_recorded = !options.skip_pins
            && match &old {
                Some(bundle) => record_pins(inventory, &bundle.manifest)?,
                None => false,
            };
        return Ok(Outcome {
            bundle_dir: dir,
            changes,
            written: false,
            pins_recorded,
        });
    }

    let identities = LazyIdentities {
        paths: &options.identities,
        loaded: std::cell::OnceCell::new(),
    };

    let issued_ids: HashSet<&str> = changes
        .added
        .iter()
        .chain(changes.reissued.iter().map(|(id, _)| id))
        .map(String::as_str)
        .collect();
    let resealed_ids: HashSet<&str> = changes.resealed.iter().map(String::as_str).collect();

    // 1. The signing CAs: new ones are issued; existing ones are unsealed when needed.
    let added_authorities: Vec<_> = plan
        .authorities
        .iter()
        .filter(|a| changes.added.contains(&authority_id(a.authority)))
        .collect();
    let mut signers: BTreeMap<Authority, SigningAuthority> = added_authorities
        .par_iter()
        .map(|a| {
            issue_authority(a, plan.algorithm, plan.ca_validity_days, now).map(|s| (a.authority, s))
        })
        .collect::<Result<_, _>>()?;
    for (authority, trust) in &options.trust {
        if changes.is_issued(&authority_id(*authority)) {
            let signer = SigningAuthority::new(trust.signing.clone(), trust.key.clone())?;
            signers.insert(*authority, signer);
        }
    }
    for authority in &plan.authorities {
        let id = authority_id(authority.authority);
        if signers.contains_key(&authority.authority) {
            continue;
        }
        let needed = resealed_ids.contains(id.as_str())
            || plan
                .certificates
                .iter()
                .any(|c| c.issuer == authority.authority && issued_ids.contains(c.id.as_str()));
        if !needed {
            continue;
        }
        let Some(bundle) = &old else { continue };
        let signer = load_signer(
            bundle,
            authority.authority,
            options.signing.get(&authority.authority),
            identities.get()?,
        )?;
        signers.insert(authority.authority, signer);
    }

    // 2. Issue leaves and secrets.
    let to_issue: Vec<_> = plan
        .certificates
        .iter()
        .filter(|c| issued_ids.contains(c.id.as_str()))
        .collect();
    // A renewal that keeps keys signs the old key again (never after an algorithm change).
    let mut kept_keys = BTreeMap::new();
    if options.keep_keys
        && let Some(bundle) = &old
    {
        let keep: Vec<_> = to_issue
            .iter()
            .filter(|c| !changes.added.contains(&c.id))
            .filter(|c| bundle.manifest.sealed_key(&c.key_file).is_some())
            .collect();
        if !keep.is_empty() {
            let ids = identities.get()?;
            kept_keys = keep
                .par_iter()
                .map(|c| {
                    let plaintext = unseal_named(&bundle.read(&c.key_file)?, ids, &c.key_file)?;
                    Ok((c.id.clone(), plaintext))
                })
                .collect::<Result<_, Error>>()?;
        }
    }
    let issued: BTreeMap<String, IssuedCertificate> = issue_leaves_keeping(
        &to_issue,
        &signers,
        &kept_keys,
        plan.algorithm,
        plan.leaf_validity_days,
        now,
    )?
    .into_iter()
    .map(|c| (c.id.clone(), c))
    .collect();
    let secrets: BTreeMap<String, IssuedSecret> = plan
        .secrets
        .par_iter()
        .filter(|s| issued_ids.contains(s.id.as_str()))
        .map(|s| issue_secret(s, plan.algorithm).map(|i| (i.id.clone(), i)))
        .collect::<Result<_, _>>()?;

    // 3. Gather every plaintext to seal: new keys, and old keys whose recipients changed.
    let mut jobs: Vec<SealJob> = Vec::new();
    let mut reseal_paths: Vec<(String, String, Vec<String>)> = Vec::new();
    for authority in &plan.authorities {
        let id = authority_id(authority.authority);
        if changes.is_issued(&id) || changes.is_resealed(&id) {
            let signer =
                signers
                    .get(&authority.authority)
                    .ok_or_else(|| BundleError::NotInManifest {
                        path: authority.key_file.clone(),
                    })?;
            // Same signing CA (a rotation being finished) and same recipients: the sealed key
            // file stays byte for byte.
            let unchanged = !changes.is_resealed(&id)
                && old.as_ref().is_some_and(|b| {
                    b.manifest
                        .authorities
                        .get(&authority.authority)
                        .and_then(|e| e.signing_fingerprint())
                        == Some(signer.certificate.fingerprint.as_str())
                        && b.manifest.sealed_key(&authority.key_file).is_some_and(|e| {
                            e.recipients_sha256 == keyring.summary(&authority.key_holders).sha256
                        })
                });
            // Between rotation steps 1 and 2 the pending CA's key is re-sealed with the CA key.
            let kept_pending = old
                .as_ref()
                .and_then(|b| b.manifest.authorities.get(&authority.authority))
                .filter(|e| {
                    e.pending.is_some() && !options.trust.contains_key(&authority.authority)
                });
            if let Some(entry) = kept_pending
                && changes.is_resealed(&id)
            {
                reseal_paths.push((
                    id.clone(),
                    entry.next_key_file(),
                    authority.key_holders.clone(),
                ));
            }
            if let Some(pending) = options
                .trust
                .get(&authority.authority)
                .and_then(|t| t.pending.as_ref())
            {
                jobs.push(SealJob {
                    key_file: super::manifest::next_key_file(&authority.key_file),
                    holders: authority.key_holders.clone(),
                    plaintext: key_pem_bytes(&pending.key),
                });
            }
            if unchanged {
                continue;
            }
            jobs.push(SealJob {
                key_file: authority.key_file.clone(),
                holders: authority.key_holders.clone(),
                plaintext: key_pem_bytes(signer.key()),
            });
        }
    }
    for certificate in &plan.certificates {
        // A re-issue over the same key (renew) whose recipients did not change keeps its
        // sealed file byte for byte.
        let same_key = issued.get(&certificate.id).is_some_and(|new| {
            old.as_ref()
                .and_then(|b| b.manifest.certificate(&certificate.cert_file))
                .is_some_and(|e| e.public_key_sha256 == new.public_key_sha256)
        });
        let sealed_as_before = same_key
            && old
                .as_ref()
                .and_then(|b| b.manifest.sealed_key(&certificate.key_file))
                .is_some_and(|e| {
                    e.recipients_sha256 == keyring.summary(&certificate.key_holders).sha256
                });
        if sealed_as_before {
            continue;
        }
        if let Some(issued) = issued.get(&certificate.id) {
            jobs.push(SealJob {
                key_file: certificate.key_file.clone(),
                holders: certificate.key_holders.clone(),
                plaintext: key_pem_bytes(&issued.key),
            });
        } else if resealed_ids.contains(certificate.id.as_str()) {
            reseal_paths.push((
                certificate.id.clone(),
                certificate.key_file.clone(),
                certificate.key_holders.clone(),
            ));
        }
    }
    for secret in &plan.secrets {
        if let Some(issued) = secrets.get(&secret.id) {
            jobs.push(SealJob {
                key_file: secret.key_file.clone(),
                holders: secret.key_holders.clone(),
                plaintext: issued.plaintext.clone(),
            });
        } else if resealed_ids.contains(secret.id.as_str()) {
            reseal_paths.push((
                secret.id.clone(),
                secret.key_file.clone(),
                secret.key_holders.clone(),
            ));
        }
    }
    if !reseal_paths.is_empty()
        && let Some(bundle) = &old
    {
        let ids = identities.get()?;
        let unsealed: Vec<SealJob> = reseal_paths
            .par_iter()
            .map(|(_, key_file, holders)| {
                let ciphertext = bundle.read(key_file)?;
                let plaintext = unseal_named(&ciphertext, ids, key_file)?;
                Ok(SealJob {
                    key_file: key_file.clone(),
                    holders: holders.clone(),
                    plaintext,
                })
            })
            .collect::<Result<_, Error>>()?;
        jobs.extend(unsealed);
    }

    // 4. Seal in parallel.
    let sealed: BTreeMap<String, (Vec<u8>, SealedKeyEntry)> = jobs
        .par_iter()
        .map(|job| {
            let set = keyring.recipients_for(&job.holders, &job.key_file)?;
            let bytes = set.seal(&job.plaintext, &job.key_file)?;
            let entry = SealedKeyEntry {
                sha256: sha256_hex(&bytes),
                recipients: set.summary.labels.clone(),
                recipients_sha256: set.summary.sha256.clone(),
            };
            Ok((job.key_file.clone(), (bytes, entry)))
        })
        .collect::<Result<_, Error>>()?;
    drop(jobs);

    // 5. Write the new bundle: kept files are linked, new ones written, manifest last.
    let nodes = std::mem::take(&mut plan.nodes);
    let manifest = assemble(
        &plan,
        nodes,
        &changes,
        old.map(|b| b.manifest),
        &signers,
        &options.trust,
        &issued,
        &secrets,
        sealed,
        &lock,
        options.fault_after_writes,
    )?;
    let pins_recorded = !options.skip_pins && record_pins(inventory, &manifest)?;
    Ok(Outcome {
        bundle_dir: dir,
        changes,
        written: true,
        pins_recorded,
    })
}

/// The operator identities, loaded on first use: a run that unseals nothing needs none.
struct LazyIdentities<'a> {
    paths: &'a [PathBuf],
    loaded: std::cell::OnceCell<Identities>,
}

impl LazyIdentities<'_> {
    fn get(&self) -> Result<&Identities, Error> {
        if self.loaded.get().is_none() {
            let _ = self.loaded.set(Identities::load_or_default(self.paths)?);
        }
        self.loaded.get().ok_or_else(|| {
            Error::Seal(crate::seal::SealError::NoIdentities {
                tried: "nothing".into(),
            })
        })
    }
}

struct SealJob {
    key_file: String,
    holders: Vec<String>,
    plaintext: Zeroizing<Vec<u8>>,
}

fn key_pem_bytes(key: &PrivateKey) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(key.to_pem().as_bytes().to_vec())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Reads CA `authority` from the bundle and unseals its key.
fn load_signer(
    bundle: &Bundle,
    authority: Authority,
    signing: Option<&String>,
    identities: &Identities,
) -> Result<SigningAuthority, Error> {
    let entry =
        bundle
            .manifest
            .authorities
            .get(&authority)
            .ok_or_else(|| BundleError::NotInManifest {
                path: format!("ca/{}", authority.name()),
            })?;
    let fingerprint = signing
        .cloned()
        .or_else(|| entry.signing_fingerprint().map(str::to_string))
        .unwrap_or_default();
    let certs = CaCertificate::from_pem_bundle(authority, &bundle.read(&entry.cert_file)?)?;
    let certificate = certs
        .into_iter()
        .find(|c| c.fingerprint == fingerprint)
        .ok_or_else(|| BundleError::NoSigningCertificate {
            authority: authority.name().to_string(),
            fingerprint: fingerprint.clone(),
        })?;
    let sealed = bundle.read(&entry.key_file)?;
    let pem = unseal_named(&sealed, identities, &entry.key_file)?;
    let key = PrivateKey::from_pem(&pem, authority.name())?;
    Ok(SigningAuthority::new(certificate, key)?)
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    plan: &Plan,
    nodes: Vec<NodePlan>,
    changes: &Changes,
    old: Option<Manifest>,
    signers: &BTreeMap<Authority, SigningAuthority>,
    trust: &BTreeMap<Authority, TrustBundle>,
    issued: &BTreeMap<String, IssuedCertificate>,
    secrets: &BTreeMap<String, IssuedSecret>,
    sealed: BTreeMap<String, (Vec<u8>, SealedKeyEntry)>,
    lock: &BundleLock,
    fault_after: Option<usize>,
) -> Result<Manifest, Error> {
    let mut files: BTreeMap<String, FileEntry> = BTreeMap::new();
    let mut authorities = BTreeMap::new();
    let mut staged: Vec<StagedFile<'_>> = Vec::new();
    // Kept entries move over from the old manifest: thousands of them on a big cluster.
    let (mut old_files, mut old_authorities) =
        old.map(|m| (m.files, m.authorities)).unwrap_or_default();
    let mut old_entry = |path: &str| -> Result<FileEntry, Error> {
        old_files.remove(path).ok_or_else(|| {
            BundleError::NotInManifest {
                path: path.to_string(),
            }
            .into()
        })
    };

    // The trust bundle of each new or rotated authority: its signing CA, then any still trusted.
    let ca_pems: BTreeMap<Authority, (String, Vec<String>)> = signers
        .iter()
        .map(|(a, s)| match trust.get(a) {
            Some(t) => (*a, (t.pem(), t.fingerprints())),
            None => (
                *a,
                (s.certificate.pem(), vec![s.certificate.fingerprint.clone()]),
            ),
        })
        .collect();
    for authority in &plan.authorities {
        let id = authority_id(authority.authority);
        let new = signers
            .get(&authority.authority)
            .zip(ca_pems.get(&authority.authority))
            .filter(|_| changes.is_issued(&id));
        match new {
            Some((signer, (pem, fingerprints))) => {
                let certificate = &signer.certificate;
                staged.push(StagedFile::Write(&authority.cert_file, pem.as_bytes()));
                files.insert(
                    authority.cert_file.clone(),
                    FileEntry::TrustBundle(TrustBundleEntry {
                        sha256: sha256_hex(pem.as_bytes()),
                        authority: authority.authority,
                        fingerprints: fingerprints.clone(),
                    }),
                );
                authorities.insert(
                    authority.authority,
                    AuthorityEntry {
                        cert_file: authority.cert_file.clone(),
                        key_file: authority.key_file.clone(),
                        fingerprints: fingerprints.clone(),
                        not_after: rfc3339(certificate.not_after),
                        pending: trust
                            .get(&authority.authority)
                            .and_then(|t| t.pending.as_ref())
                            .map(|p| p.certificate.fingerprint.clone()),
                    },
                );
            }
            None => {
                staged.push(StagedFile::Keep(&authority.cert_file));
                files.insert(
                    authority.cert_file.clone(),
                    old_entry(&authority.cert_file)?,
                );
                if let Some(entry) = old_authorities.remove(&authority.authority) {
                    authorities.insert(authority.authority, entry);
                }
            }
        }
    }

    for certificate in &plan.certificates {
        if let Some(new) = issued.get(&certificate.id) {
            staged.push(StagedFile::Write(
                &certificate.cert_file,
                new.pem.as_bytes(),
            ));
            let inputs = CertificateInputs::of(plan, certificate);
            files.insert(
                certificate.cert_file.clone(),
                FileEntry::Certificate(CertificateEntry {
                    sha256: sha256_hex(new.pem.as_bytes()),
                    serial: new.serial.clone(),
                    not_before: rfc3339(new.not_before),
                    not_after: rfc3339(new.not_after),
                    issuer: new.issuer,
                    issuer_fingerprint: new.issuer_fingerprint.clone(),
                    public_key_sha256: new.public_key_sha256.clone(),
                    inputs: inputs.digest(),
                    input_parts: inputs.parts(),
                }),
            );
        } else {
            staged.push(StagedFile::Keep(&certificate.cert_file));
            files.insert(
                certificate.cert_file.clone(),
                old_entry(&certificate.cert_file)?,
            );
        }
    }

    for secret in &plan.secrets {
        if let Some(public) = &secret.public_file {
            match secrets.get(&secret.id).and_then(|s| s.public_pem.as_ref()) {
                Some(pem) => {
                    staged.push(StagedFile::Write(public, pem.as_bytes()));
                    files.insert(
                        public.clone(),
                        FileEntry::PublicKey(PublicKeyEntry {
                            sha256: sha256_hex(pem.as_bytes()),
                        }),
                    );
                }
                None => {
                    staged.push(StagedFile::Keep(public));
                    files.insert(public.clone(), old_entry(public)?);
                }
            }
        }
    }

    // Every sealed key: the new bytes if it was (re-)sealed, else the old file.
    let next_key_files: Vec<String> = authorities
        .values()
        .filter(|e: &&AuthorityEntry| e.pending.is_some())
        .map(AuthorityEntry::next_key_file)
        .collect();
    let key_files = plan
        .authorities
        .iter()
        .map(|a| &a.key_file)
        .chain(&next_key_files)
        .chain(plan.certificates.iter().map(|c| &c.key_file))
        .chain(plan.secrets.iter().map(|s| &s.key_file));
    for key_file in key_files {
        match sealed.get(key_file) {
            Some((bytes, entry)) => {
                staged.push(StagedFile::Write(key_file, bytes));
                files.insert(key_file.clone(), FileEntry::SealedKey(entry.clone()));
            }
            None => {
                staged.push(StagedFile::Keep(key_file));
                files.insert(key_file.clone(), old_entry(key_file)?);
            }
        }
    }

    let manifest = Manifest {
        format: super::manifest::FORMAT,
        cluster: plan.cluster.clone(),
        algorithm: plan.algorithm,
        authorities,
        files,
        nodes: nodes.into_iter().map(|n| (n.name.clone(), n)).collect(),
    };
    let mut tx = Transaction::begin(lock)?;
    tx.fail_after(fault_after);
    // Staging is file-system bound; encoding the manifest is CPU-bound: overlap them.
    let (applied, json) = rayon::join(|| tx.apply(&staged), || manifest.to_json());
    applied?;
    let json = json.map_err(|e| BundleError::BadManifest {
        path: super::manifest::MANIFEST_FILE.into(),
        reason: e.to_string(),
    })?;
    tx.commit(&json)?;
    Ok(manifest)
}

/// Writes the CA fingerprints into `[pki.pins]` of the inventory if they differ; returns whether it did.
pub fn record_pins(inventory: &Inventory, manifest: &Manifest) -> Result<bool, Error> {
    let wanted: BTreeMap<Authority, Vec<String>> = manifest
        .authorities
        .iter()
        .map(|(a, e)| (*a, e.fingerprints.clone()))
        .collect();
    if inventory.spec.pki.pins == wanted {
        return Ok(false);
    }
    let changed = crate::inventory::edit::update(&inventory.path, |doc| {
        let pki = doc
            .entry("pki")
            .or_insert_with(toml_edit::table)
            .as_table_mut();
        let Some(pki) = pki else { return };
        let pins = pki.entry("pins").or_insert_with(toml_edit::table);
        let Some(pins) = pins.as_table_mut() else {
            return;
        };
        pins.clear();
        for (authority, fingerprints) in &wanted {
            let mut array = toml_edit::Array::new();
            for fingerprint in fingerprints {
                array.push(fingerprint.as_str());
            }
            pins.insert(authority.name(), toml_edit::value(array));
        }
    })
    .map_err(BundleError::from)?;
    Ok(changed)
}

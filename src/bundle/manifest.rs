//! `manifest.json`: the index of the bundle, read by activation, the lifecycle commands and Nix.
//!
//! The format is the one in CONTRACTS.md. One addition, not a deviation:
//! certificate entries carry `input_parts`, a short digest per input (subject,
//! sans, usages, issuer, algorithm, validity) beside the full `inputs` digest,
//! so that a re-issue can say *which* input changed. Readers that do not know
//! it ignore it. A second addition, for the staged CA rotation
//! (docs/ca-rotation.md): an authority entry may carry `pending`, the
//! `sha256:` fingerprint of a new CA that is already in the trust bundle (and
//! pinned) but does not sign yet; its key is sealed to the CA key holders in
//! `next_key_file` (`ca/<authority>.next.key.age`, a `sealed-key` file entry).
//! Both are absent outside step 1 of a rotation. Maps are `BTreeMap`s, so the file is byte-stable for the same
//! content, and it is pretty-printed so a `git diff` of it is readable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::inventory::KeyAlgorithm;
use crate::plan::{Authority, CertificatePlan, NodePlan, Plan};

/// The manifest format this version writes and reads.
pub const FORMAT: u32 = 1;

/// The file name of the manifest inside the bundle folder.
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub cluster: String,
    pub algorithm: KeyAlgorithm,
    pub authorities: BTreeMap<Authority, AuthorityEntry>,
    /// Every file of the bundle but the manifest, by path relative to the bundle folder.
    pub files: BTreeMap<String, FileEntry>,
    /// What each node installs (the plan's [`NodePlan`]), by node name.
    pub nodes: BTreeMap<String, NodePlan>,
}

/// A trust root: its files and the CA certificates nodes accept, the signing one first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorityEntry {
    pub cert_file: String,
    pub key_file: String,
    /// `sha256:<hex of DER>` of each CA certificate in the trust bundle; the first signs.
    pub fingerprints: Vec<String>,
    /// RFC 3339 expiry of the signing CA.
    pub not_after: String,
    /// CA rotation, step 1: the fingerprint of the new CA that is trusted but does not sign yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

impl AuthorityEntry {
    /// Fingerprint of the CA that signs new leaves.
    pub fn signing_fingerprint(&self) -> Option<&str> {
        self.fingerprints.first().map(String::as_str)
    }

    /// Where the sealed key of the pending CA lives (`ca/etcd.key.age` -> `ca/etcd.next.key.age`).
    pub fn next_key_file(&self) -> String {
        next_key_file(&self.key_file)
    }
}

/// The sealed key file of a pending CA, beside the authority's `key_file`.
pub fn next_key_file(key_file: &str) -> String {
    match key_file.strip_suffix(".key.age") {
        Some(stem) => format!("{stem}.next.key.age"),
        None => format!("{key_file}.next"),
    }
}

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FileEntry {
    Certificate(CertificateEntry),
    SealedKey(SealedKeyEntry),
    TrustBundle(TrustBundleEntry),
    PublicKey(PublicKeyEntry),
}

impl FileEntry {
    /// hex SHA-256 of the file bytes.
    pub fn sha256(&self) -> &str {
        match self {
            FileEntry::Certificate(e) => &e.sha256,
            FileEntry::SealedKey(e) => &e.sha256,
            FileEntry::TrustBundle(e) => &e.sha256,
            FileEntry::PublicKey(e) => &e.sha256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateEntry {
    pub sha256: String,
    /// Lower-case hex of the serial number.
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub issuer: Authority,
    pub issuer_fingerprint: String,
    /// hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub public_key_sha256: String,
    /// `sha256:<hex>` of the canonical JSON of every input (see [`CertificateInputs`]).
    pub inputs: String,
    /// Short digest of each input separately, to name what changed.
    #[serde(default)]
    pub input_parts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKeyEntry {
    pub sha256: String,
    /// `node:<name>` / `operator:<name>`, sorted.
    pub recipients: Vec<String>,
    /// hex SHA-256 of the sorted recipient key texts joined by newlines.
    pub recipients_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustBundleEntry {
    pub sha256: String,
    pub authority: Authority,
    pub fingerprints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyEntry {
    pub sha256: String,
}

/// What a certificate is made from; a change in any of these re-issues it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateInputs<'a> {
    pub common_name: &'a str,
    pub organizations: &'a [String],
    pub sans: Vec<String>,
    pub usages: &'a [crate::plan::Usage],
    pub issuer: Authority,
    pub algorithm: KeyAlgorithm,
    pub validity_days: u32,
}

/// One input of a certificate, as named in re-issue reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputPart {
    Subject,
    Sans,
    Usages,
    Issuer,
    Algorithm,
    Validity,
}

impl InputPart {
    pub const ALL: [InputPart; 6] = [
        InputPart::Subject,
        InputPart::Sans,
        InputPart::Usages,
        InputPart::Issuer,
        InputPart::Algorithm,
        InputPart::Validity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InputPart::Subject => "subject",
            InputPart::Sans => "sans",
            InputPart::Usages => "usages",
            InputPart::Issuer => "issuer",
            InputPart::Algorithm => "algorithm",
            InputPart::Validity => "validity",
        }
    }

    /// How it reads in a message.
    pub fn label(self) -> &'static str {
        match self {
            InputPart::Subject => "subject",
            InputPart::Sans => "SANs",
            InputPart::Usages => "usages",
            InputPart::Issuer => "issuer",
            InputPart::Algorithm => "algorithm",
            InputPart::Validity => "validity",
        }
    }
}

impl<'a> CertificateInputs<'a> {
    pub fn of(plan: &'a Plan, certificate: &'a CertificatePlan) -> CertificateInputs<'a> {
        CertificateInputs {
            common_name: &certificate.common_name,
            organizations: &certificate.organizations,
            sans: certificate.sans.iter().map(ToString::to_string).collect(),
            usages: &certificate.usages,
            issuer: certificate.issuer,
            algorithm: plan.algorithm,
            validity_days: plan.leaf_validity_days,
        }
    }

    /// `sha256:<hex>` of the canonical JSON of all inputs.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(canonical(self))))
    }

    /// A 16-hex-digit digest of each input.
    pub fn parts(&self) -> BTreeMap<String, String> {
        InputPart::ALL
            .into_iter()
            .map(|part| (part.name().to_string(), self.part_digest(part)))
            .collect()
    }

    fn part_digest(&self, part: InputPart) -> String {
        let json = match part {
            InputPart::Subject => canonical(&(self.common_name, self.organizations)),
            InputPart::Sans => canonical(&self.sans),
            InputPart::Usages => canonical(self.usages),
            InputPart::Issuer => canonical(&self.issuer),
            InputPart::Algorithm => canonical(&self.algorithm),
            InputPart::Validity => canonical(&self.validity_days),
        };
        hex::encode(&Sha256::digest(json)[..8])
    }
}

fn canonical<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serialising plain structs, strings and enums to a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

impl Manifest {
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = serde_json::to_vec_pretty(self)?;
        out.push(b'\n');
        Ok(out)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn certificate(&self, path: &str) -> Option<&CertificateEntry> {
        match self.files.get(path) {
            Some(FileEntry::Certificate(e)) => Some(e),
            _ => None,
        }
    }

    pub fn sealed_key(&self, path: &str) -> Option<&SealedKeyEntry> {
        match self.files.get(path) {
            Some(FileEntry::SealedKey(e)) => Some(e),
            _ => None,
        }
    }

    /// The install description of every node, from the plan.
    pub fn nodes_of(plan: &Plan) -> BTreeMap<String, NodePlan> {
        plan.nodes
            .iter()
            .map(|n| (n.name.clone(), n.clone()))
            .collect()
    }
}

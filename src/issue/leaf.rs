//! Leaf certificates: one key pair and one certificate per [`CertificatePlan`], issued in parallel.

use std::collections::BTreeMap;

use rayon::prelude::*;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::authority::fingerprint;
use super::{IssueError, PrivateKey, SigningAuthority, random_serial, validity};
use crate::inventory::KeyAlgorithm;
use crate::plan::{Authority, CertificatePlan, San, Usage};

/// A freshly issued leaf: the certificate (public) and its key (secret, to be sealed).
#[derive(Debug)]
pub struct IssuedCertificate {
    /// The plan id, e.g. `nodes/ec2-controlplane/apiserver`.
    pub id: String,
    pub der: Vec<u8>,
    pub pem: String,
    pub key: PrivateKey,
    /// Lower-case hex of the serial number.
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub issuer: Authority,
    pub issuer_fingerprint: String,
    /// hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub public_key_sha256: String,
}

/// Issues one leaf certificate for `plan`, signed by `signer`.
pub fn issue_leaf(
    plan: &CertificatePlan,
    signer: &SigningAuthority,
    algorithm: KeyAlgorithm,
    validity_days: u32,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, IssueError> {
    let (key, pair) = PrivateKey::generate_with_pair(algorithm)?;
    sign(plan, signer, key, pair, validity_days, now)
}

/// Issues one leaf certificate for `plan` over an existing `key` (a renewal that keeps the key).
pub fn issue_leaf_with_key(
    plan: &CertificatePlan,
    signer: &SigningAuthority,
    key: PrivateKey,
    validity_days: u32,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, IssueError> {
    let pair = key.key_pair().map_err(|e| IssueError::Signing {
        id: plan.id.clone(),
        reason: e.to_string(),
    })?;
    sign(plan, signer, key, pair, validity_days, now)
}

/// Signs the certificate of `plan` over `key` (whose rcgen form is `pair`).
fn sign(
    plan: &CertificatePlan,
    signer: &SigningAuthority,
    key: PrivateKey,
    pair: rcgen::KeyPair,
    validity_days: u32,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, IssueError> {
    let signing = |reason: String| IssueError::Signing {
        id: plan.id.clone(),
        reason,
    };
    let algorithm = key.algorithm();

    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    for organization in &plan.organizations {
        name.push(DnType::OrganizationName, organization.as_str());
    }
    name.push(DnType::CommonName, plan.common_name.as_str());
    params.distinguished_name = name;
    (params.not_before, params.not_after) = validity(now, validity_days);
    let serial = random_serial();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = if algorithm.is_rsa() {
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ]
    } else {
        vec![KeyUsagePurpose::DigitalSignature]
    };
    params.extended_key_usages = plan
        .usages
        .iter()
        .map(|usage| match usage {
            Usage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        })
        .collect();
    params.subject_alt_names = plan
        .sans
        .iter()
        .map(|san| match san {
            San::Dns(name) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e: rcgen::Error| signing(format!("SAN `{name}`: {e}"))),
            San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        })
        .collect::<Result<_, _>>()?;

    let cert = params
        .signed_by(&pair, signer.issuer())
        .map_err(|e| signing(e.to_string()))?;
    let der = cert.der().to_vec();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&pair);
    Ok(IssuedCertificate {
        id: plan.id.clone(),
        pem: cert.pem(),
        key,
        serial: hex::encode(serial),
        not_before: params.not_before,
        not_after: params.not_after,
        issuer: plan.issuer,
        issuer_fingerprint: fingerprint(&signer.certificate.der),
        public_key_sha256: hex::encode(Sha256::digest(&spki)),
        der,
    })
}

/// Issues every planned leaf in parallel (rayon), each with the signer of its issuer.
pub fn issue_leaves(
    plans: &[&CertificatePlan],
    signers: &BTreeMap<Authority, SigningAuthority>,
    algorithm: KeyAlgorithm,
    validity_days: u32,
    now: OffsetDateTime,
) -> Result<Vec<IssuedCertificate>, IssueError> {
    issue_leaves_keeping(
        plans,
        signers,
        &BTreeMap::new(),
        algorithm,
        validity_days,
        now,
    )
}

/// [`issue_leaves`], but a leaf whose id is in `kept_keys` (PEM private keys, e.g. unsealed
/// from the bundle for `kubepki renew`) is signed over that key when it has `algorithm`.
pub fn issue_leaves_keeping(
    plans: &[&CertificatePlan],
    signers: &BTreeMap<Authority, SigningAuthority>,
    kept_keys: &BTreeMap<String, zeroize::Zeroizing<Vec<u8>>>,
    algorithm: KeyAlgorithm,
    validity_days: u32,
    now: OffsetDateTime,
) -> Result<Vec<IssuedCertificate>, IssueError> {
    plans
        .par_iter()
        .map(|plan| {
            let signer = signers
                .get(&plan.issuer)
                .ok_or_else(|| IssueError::MissingAuthority {
                    authority: plan.issuer.name().to_string(),
                    id: plan.id.clone(),
                })?;
            let kept = match kept_keys.get(&plan.id) {
                Some(pem) => Some(PrivateKey::from_pem(pem, &plan.id)?),
                None => None,
            };
            match kept.filter(|key| key.algorithm() == algorithm) {
                Some(key) => issue_leaf_with_key(plan, signer, key, validity_days, now),
                None => issue_leaf(plan, signer, algorithm, validity_days, now),
            }
        })
        .collect()
}

//! Certificate authorities: making a new self-signed CA, and loading an existing one to sign with.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{IssueError, PrivateKey, random_serial, validity};
use crate::inventory::KeyAlgorithm;
use crate::plan::{Authority, AuthorityPlan};

/// One CA certificate (public), with what the manifest and the pins record about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertificate {
    pub authority: Authority,
    pub der: Vec<u8>,
    /// `sha256:<hex of the DER>`: the pin nodes check.
    pub fingerprint: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub public_key_sha256: String,
}

impl CaCertificate {
    pub fn from_der(authority: Authority, der: Vec<u8>) -> Result<CaCertificate, IssueError> {
        let bad = |reason: String| IssueError::BadAuthorityCertificate {
            authority: authority.name().to_string(),
            reason,
        };
        let (_, cert) =
            x509_parser::parse_x509_certificate(&der).map_err(|e| bad(e.to_string()))?;
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        let public_key_sha256 = hex::encode(Sha256::digest(cert.public_key().raw));
        let fingerprint = fingerprint(&der);
        Ok(CaCertificate {
            authority,
            der,
            fingerprint,
            not_before,
            not_after,
            public_key_sha256,
        })
    }

    /// Every certificate of a PEM trust bundle, in file order (the signing CA first).
    pub fn from_pem_bundle(
        authority: Authority,
        pem: &[u8],
    ) -> Result<Vec<CaCertificate>, IssueError> {
        let mut out = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
            let block = block.map_err(|e| IssueError::BadAuthorityCertificate {
                authority: authority.name().to_string(),
                reason: e.to_string(),
            })?;
            out.push(CaCertificate::from_der(authority, block.contents)?);
        }
        if out.is_empty() {
            return Err(IssueError::BadAuthorityCertificate {
                authority: authority.name().to_string(),
                reason: "the file holds no PEM certificate".into(),
            });
        }
        Ok(out)
    }

    pub fn pem(&self) -> String {
        crate::pem::encode("CERTIFICATE", &self.der).to_string()
    }
}

/// `sha256:<hex>` of DER bytes, the form of pins and issuer fingerprints.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// A CA that can sign: its certificate and its (unsealed) key.
pub struct SigningAuthority {
    pub certificate: CaCertificate,
    key: PrivateKey,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for SigningAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningAuthority")
            .field("certificate", &self.certificate.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SigningAuthority {
    /// Pairs a CA certificate with its key, checking the key is the certificate's.
    pub fn new(
        certificate: CaCertificate,
        key: PrivateKey,
    ) -> Result<SigningAuthority, IssueError> {
        let name = certificate.authority.name().to_string();
        let bad_key = |reason: String| IssueError::BadAuthorityKey {
            authority: name.clone(),
            reason,
        };
        let pair = key.key_pair().map_err(|e| bad_key(e.to_string()))?;
        let spki = key.public_key_der().map_err(|e| bad_key(e.to_string()))?;
        if hex::encode(Sha256::digest(&spki)) != certificate.public_key_sha256 {
            return Err(bad_key("the key does not match the CA certificate".into()));
        }
        let issuer =
            Issuer::from_ca_cert_der(&certificate.der.as_slice().into(), pair).map_err(|e| {
                IssueError::BadAuthorityCertificate {
                    authority: name.clone(),
                    reason: e.to_string(),
                }
            })?;
        Ok(SigningAuthority {
            certificate,
            key,
            issuer,
        })
    }

    pub fn authority(&self) -> Authority {
        self.certificate.authority
    }

    /// The CA's private key, e.g. to seal it.
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

/// A new self-signed CA for `plan`, valid `validity_days` from `now` (back-dated 5 minutes).
pub fn issue_authority(
    plan: &AuthorityPlan,
    algorithm: KeyAlgorithm,
    validity_days: u32,
    now: OffsetDateTime,
) -> Result<SigningAuthority, IssueError> {
    let key = PrivateKey::generate(algorithm)?;
    let signing = |reason: String| IssueError::Signing {
        id: plan.cert_file.clone(),
        reason,
    };
    let pair = key.key_pair().map_err(|e| signing(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, plan.common_name.as_str());
    params.distinguished_name = name;
    (params.not_before, params.not_after) = validity(now, validity_days);
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let cert = params
        .self_signed(&pair)
        .map_err(|e| signing(e.to_string()))?;
    let certificate = CaCertificate::from_der(plan.authority, cert.der().to_vec())?;
    SigningAuthority::new(certificate, key)
}

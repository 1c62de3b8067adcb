//! Verification of the decrypted material before anything is installed.
//!
//! Checks, for this node: every CA in every trust bundle it uses is pinned
//! (its SHA-256 fingerprint was given with `--pin`), so a commit that swaps in
//! a rogue CA and a manifest agreeing with it is still refused; every leaf
//! certificate is signed by a pinned CA of its authority; each private key
//! matches its certificate (same public key), the service-account key matches
//! `sa.pub` and a CA key matches its CA; names bound to the node are right;
//! nothing is expired or not yet valid. Inside the renewal window it only
//! warns. It does not check revocation (Kubernetes has none for x509 clients)
//! and it writes nothing.

use std::collections::BTreeMap;

use rayon::prelude::*;
use rcgen::PublicKeyData;
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::ActivateError;
use super::source::{NodeBundle, trust_bundle_file};
use super::unseal::Plaintexts;
use crate::plan::{Authority, InstallFile, Part};

/// The pinned CA fingerprints per authority, lowercase hex without the `sha256:` prefix.
pub type Pins = BTreeMap<Authority, Vec<String>>;

/// What verification learnt: expiry per installed certificate file, and warnings.
#[derive(Debug, Default)]
pub struct Verified {
    pub certificates: Vec<CertificateExpiry>,
    pub warnings: Vec<String>,
}

/// The earliest expiry among the certificates of one installed file.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateExpiry {
    /// Material name: `apiserver`, `kubernetes-ca`, ...
    pub material: String,
    pub install: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// How the check treats time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Unix seconds.
    pub now: i64,
    pub renew_before_days: u32,
}

/// Verifies everything the node installs; returns the first failure.
pub fn verify_all(
    bundle: &NodeBundle,
    plaintexts: &Plaintexts,
    pins: &Pins,
    clock: Clock,
) -> Result<Verified, ActivateError> {
    let mut out = Verified::default();
    let mut authorities = BTreeMap::new();
    let needed: Vec<Authority> = Authority::ALL
        .into_iter()
        .filter(|a| bundle.contents.contains_key(&trust_bundle_file(*a)))
        .collect();
    for authority in needed {
        let file = trust_bundle_file(authority);
        let cas = pinned_trust_bundle(&file, bundle.bytes(&file), authority, pins)?;
        authorities.insert(authority, (file, cas));
    }

    // Files are checked in parallel; results are taken in plan order, so the first failure
    // reported and the order of warnings do not depend on scheduling.
    let checked: Vec<Result<FileCheck, ActivateError>> = bundle
        .files
        .par_iter()
        .map(|file| verify_file(bundle, file, plaintexts, &authorities, clock))
        .collect();
    for result in checked {
        let check = result?;
        out.warnings.extend(check.warnings);
        out.certificates.extend(check.expiry);
    }
    Ok(out)
}

/// The trust bundles in use: authority to (bundle path, DER of each pinned CA).
type Authorities = BTreeMap<Authority, (String, Vec<Vec<u8>>)>;

#[derive(Default)]
struct FileCheck {
    expiry: Option<CertificateExpiry>,
    warnings: Vec<String>,
}

fn verify_file(
    bundle: &NodeBundle,
    file: &InstallFile,
    plaintexts: &Plaintexts,
    authorities: &Authorities,
    clock: Clock,
) -> Result<FileCheck, ActivateError> {
    let mut out = FileCheck::default();
    match file.part {
        Part::TrustBundle => {
            let Some(authority) = authority_of_trust_bundle(file) else {
                return Err(ActivateError::ManifestInvalid {
                    path: "manifest.json".into(),
                    reason: format!("trust bundle source `{}` names no authority", file.source),
                });
            };
            let Some((_, cas)) = authorities.get(&authority) else {
                return Err(ActivateError::NotInManifest {
                    file: file.source.clone(),
                });
            };
            let mut earliest = i64::MAX;
            for ca in cas {
                let cert = parse_der(&file.source, ca)?;
                check_validity(&file.source, &cert, clock, &mut out.warnings)?;
                earliest = earliest.min(cert.validity().not_after.timestamp());
            }
            out.expiry = Some(expiry(file, earliest));
        }
        Part::Certificate => {
            let der = single_certificate(&file.source, bundle.bytes(&file.source))?;
            let cert = parse_der(&file.source, &der)?;
            let authority = bundle.issuers.get(&file.source).copied();
            check_chain(&file.source, &cert, authority, authorities)?;
            check_validity(&file.source, &cert, clock, &mut out.warnings)?;
            check_node_names(&file.source, &file.material, &cert, &bundle.node)?;
            out.expiry = Some(expiry(file, cert.validity().not_after.timestamp()));
        }
        Part::Secret => {
            let plain = plaintexts.get(&file.source).map_or(&[][..], |p| &p[..]);
            check_key(bundle, file, plain, authorities)?;
        }
        Part::PublicKey => {}
    }
    Ok(out)
}

fn expiry(file: &InstallFile, not_after: i64) -> CertificateExpiry {
    CertificateExpiry {
        material: file.material.clone(),
        install: file.install.clone(),
        not_after,
    }
}

fn authority_of_trust_bundle(file: &InstallFile) -> Option<Authority> {
    file.source
        .strip_prefix("ca/")
        .and_then(|s| s.strip_suffix(".crt"))
        .and_then(Authority::from_name)
}

/// Parses a trust bundle and refuses any CA whose fingerprint is not pinned.
fn pinned_trust_bundle(
    file: &str,
    bytes: &[u8],
    authority: Authority,
    pins: &Pins,
) -> Result<Vec<Vec<u8>>, ActivateError> {
    let pinned = pins
        .get(&authority)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ActivateError::MissingPin {
            file: file.to_string(),
            authority,
        })?;
    let cas = certificates(file, bytes)?;
    for der in &cas {
        let fingerprint = hex::encode(Sha256::digest(der));
        if !pinned.contains(&fingerprint) {
            let subject = parse_der(file, der)
                .map(|c| c.subject().to_string())
                .unwrap_or_default();
            return Err(ActivateError::RogueAuthority {
                file: file.to_string(),
                authority,
                fingerprint,
                subject,
            });
        }
    }
    Ok(cas)
}

/// Every CERTIFICATE block of a PEM file, as DER; at least one.
fn certificates(file: &str, bytes: &[u8]) -> Result<Vec<Vec<u8>>, ActivateError> {
    let not_pem = |reason: String| ActivateError::NotPem {
        file: file.to_string(),
        expected: "certificate",
        reason,
    };
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| not_pem(e.to_string()))?;
        if pem.label != "CERTIFICATE" {
            return Err(not_pem(format!("found a `{}` block", pem.label)));
        }
        out.push(pem.contents);
    }
    if out.is_empty() {
        return Err(not_pem("no CERTIFICATE block".into()));
    }
    Ok(out)
}

fn single_certificate(file: &str, bytes: &[u8]) -> Result<Vec<u8>, ActivateError> {
    let mut all = certificates(file, bytes)?;
    if all.len() != 1 {
        return Err(ActivateError::NotPem {
            file: file.to_string(),
            expected: "certificate",
            reason: format!("expected one certificate, found {}", all.len()),
        });
    }
    Ok(all.remove(0))
}

fn parse_der<'a>(file: &str, der: &'a [u8]) -> Result<X509Certificate<'a>, ActivateError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| ActivateError::NotPem {
            file: file.to_string(),
            expected: "certificate",
            reason: e.to_string(),
        })
}

/// The certificate must be signed by one of the pinned CAs of its authority.
fn check_chain(
    file: &str,
    cert: &X509Certificate<'_>,
    claimed: Option<Authority>,
    authorities: &Authorities,
) -> Result<(), ActivateError> {
    let candidates: Vec<Authority> = match claimed {
        Some(a) => vec![a],
        None => authorities.keys().copied().collect(),
    };
    for authority in &candidates {
        let Some((ca_file, cas)) = authorities.get(authority) else {
            continue;
        };
        for der in cas {
            let ca = parse_der(ca_file, der)?;
            if ca.subject().as_raw() == cert.issuer().as_raw()
                && ca.is_ca()
                && cert.verify_signature(Some(ca.public_key())).is_ok()
            {
                return Ok(());
            }
        }
    }
    Err(ActivateError::NotSignedByPinnedAuthority {
        file: file.to_string(),
        authority: candidates.first().copied().unwrap_or(Authority::Kubernetes),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
    })
}

fn check_validity(
    file: &str,
    cert: &X509Certificate<'_>,
    clock: Clock,
    warnings: &mut Vec<String>,
) -> Result<(), ActivateError> {
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    if clock.now < not_before {
        return Err(ActivateError::NotYetValid {
            file: file.to_string(),
            not_before: rfc3339(not_before),
            now: rfc3339(clock.now),
        });
    }
    if clock.now > not_after {
        return Err(ActivateError::Expired {
            file: file.to_string(),
            not_after: rfc3339(not_after),
            now: rfc3339(clock.now),
        });
    }
    let left = days_left(not_after, clock.now);
    if left < f64::from(clock.renew_before_days) {
        warnings.push(format!(
            "{file}: expires in {left:.1} days ({}), inside the {}-day renewal window; run `kubepki renew` and redeploy",
            rfc3339(not_after),
            clock.renew_before_days
        ));
    }
    Ok(())
}

/// Days from `now` to `not_after`, fractional.
pub fn days_left(not_after: i64, now: i64) -> f64 {
    (not_after - now) as f64 / 86_400.0
}

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{unix}"))
}

/// The identities Kubernetes derives from a node's certificates must name this node.
fn check_node_names(
    file: &str,
    material: &str,
    cert: &X509Certificate<'_>,
    node: &str,
) -> Result<(), ActivateError> {
    let wrong = |what: &'static str, found: String, expected: String| ActivateError::WrongNode {
        file: file.to_string(),
        what,
        found,
        expected,
        node: node.to_string(),
    };
    match material {
        "kubelet-client" => {
            let cn: Vec<String> = cert
                .subject()
                .iter_common_name()
                .filter_map(|a| a.as_str().ok().map(str::to_string))
                .collect();
            let expected = format!("system:node:{node}");
            if cn != [expected.clone()] {
                return Err(wrong(
                    "the subject CN",
                    format!("`{}`", cn.join(", ")),
                    format!("`{expected}`"),
                ));
            }
            let orgs: Vec<String> = cert
                .subject()
                .iter_organization()
                .filter_map(|a| a.as_str().ok().map(str::to_string))
                .collect();
            if !orgs.iter().any(|o| o == "system:nodes") {
                return Err(wrong(
                    "the subject O",
                    format!("`{}`", orgs.join(", ")),
                    "`system:nodes`".into(),
                ));
            }
        }
        "kubelet-serving" | "etcd-server" | "etcd-peer" | "apiserver" => {
            let names = dns_names(cert);
            if !names.iter().any(|n| n == node) {
                return Err(wrong(
                    "the DNS SAN list",
                    format!("[{}]", names.join(", ")),
                    format!("a SAN `{node}`"),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(s) => Some(s.to_string()),
            _ => None,
        })
        .collect()
}

/// A private key must match the public key published beside it.
fn check_key(
    bundle: &NodeBundle,
    file: &InstallFile,
    plain: &[u8],
    authorities: &Authorities,
) -> Result<(), ActivateError> {
    let partner = bundle
        .files
        .iter()
        .find(|f| f.material == file.material && f.part != Part::Secret);
    let Some(partner) = partner else {
        // A secret without a public half (the encryption config).
        return Ok(());
    };
    let public = public_key_of(file, plain)?;
    let matches = match partner.part {
        Part::Certificate => {
            let der = single_certificate(&partner.source, bundle.bytes(&partner.source))?;
            let cert = parse_der(&partner.source, &der)?;
            same_key(cert.public_key(), &public)
        }
        Part::TrustBundle => {
            let cas = authority_of_trust_bundle(partner)
                .and_then(|a| authorities.get(&a))
                .map(|(_, cas)| cas.as_slice())
                .unwrap_or(&[]);
            let mut any = false;
            for der in cas {
                let ca = parse_der(&partner.source, der)?;
                any |= same_key(ca.public_key(), &public);
            }
            any
        }
        Part::PublicKey => {
            let der = public_key_pem(&partner.source, bundle.bytes(&partner.source))?;
            let (_, spki) =
                SubjectPublicKeyInfo::from_der(&der).map_err(|e| ActivateError::NotPem {
                    file: partner.source.clone(),
                    expected: "public key",
                    reason: e.to_string(),
                })?;
            same_key(&spki, &public)
        }
        Part::Secret => true,
    };
    if !matches {
        return Err(ActivateError::KeyMismatch {
            key: file.source.clone(),
            certificate: partner.source.clone(),
        });
    }
    Ok(())
}

/// The raw public key (EC point, Ed25519 bytes or PKCS#1 RSAPublicKey) of a PEM private key.
fn public_key_of(file: &InstallFile, plain: &[u8]) -> Result<Vec<u8>, ActivateError> {
    let unreadable = |reason: String| ActivateError::KeyUnreadable {
        file: file.source.clone(),
        reason,
    };
    let text = std::str::from_utf8(plain).map_err(|_| unreadable("it is not PEM text".into()))?;
    if crate::pem::label(text) == Some("RSA PRIVATE KEY") {
        use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
        let key =
            rsa::RsaPrivateKey::from_pkcs1_pem(text).map_err(|e| unreadable(e.to_string()))?;
        let public = key
            .to_public_key()
            .to_pkcs1_der()
            .map_err(|e| unreadable(e.to_string()))?;
        return Ok(public.as_bytes().to_vec());
    }
    let key = rcgen::KeyPair::from_pem(text).map_err(|e| unreadable(e.to_string()))?;
    Ok(key.der_bytes().to_vec())
}

fn public_key_pem(file: &str, bytes: &[u8]) -> Result<Vec<u8>, ActivateError> {
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| ActivateError::NotPem {
            file: file.to_string(),
            expected: "public key",
            reason: e.to_string(),
        })?;
        if pem.label == "PUBLIC KEY" {
            return Ok(pem.contents);
        }
    }
    Err(ActivateError::NotPem {
        file: file.to_string(),
        expected: "public key",
        reason: "no PUBLIC KEY block".into(),
    })
}

fn same_key(spki: &SubjectPublicKeyInfo<'_>, raw_public: &[u8]) -> bool {
    spki.subject_public_key.data.as_ref() == raw_public
}

//! The expiry report behind `kubepki check`: every CA and leaf certificate in the bundle, when it
//! expires, how long is left, and who issued it, like `kubeadm certs check-expiration`.
//!
//! Dates come from the certificates themselves (parsed with x509-parser), not
//! from the manifest, so a hand-edited or stale manifest cannot hide an
//! expiring file. A leaf's authority is the CA in `ca/<authority>.crt` whose
//! key verifies its signature, so during a CA rotation the report says which
//! leaves still hang off the previous CA. It reads; it never renews.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::pem::Pem;
use x509_parser::prelude::X509Certificate;

use super::table::{Table, Tone};
use crate::plan::{Authority, Plan};

/// Where a certificate stands against the renewal window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    Valid,
    /// The plan names it but the bundle does not hold it yet: `recreate` will issue it.
    Missing,
    /// Inside `renew_before_days` of its expiry: `recreate` will re-issue it.
    RenewalDue,
    Expired,
}

/// One leaf certificate's expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeafExpiry {
    /// Bundle path, e.g. `nodes/ec2-controlplane/apiserver.crt`.
    pub certificate: String,
    pub common_name: String,
    /// RFC 3339.
    pub expires: String,
    pub residual_seconds: i64,
    /// The authority whose CA signed it, e.g. `kubernetes`; `None` if no CA in the bundle did.
    pub authority: Option<Authority>,
    /// True when it was signed by a CA being rotated out (second in the trust bundle).
    pub previous_ca: bool,
    pub standing: Standing,
}

/// One CA certificate's expiry; during a rotation an authority has two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorityExpiry {
    pub authority: Authority,
    /// `signing` for the CA that issues, `previous` for one being rotated out, `pending` for a
    /// new one that is trusted but does not sign yet (step 1 of a rotation).
    pub role: &'static str,
    pub fingerprint: String,
    pub expires: String,
    pub residual_seconds: i64,
    pub standing: Standing,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiryReport {
    pub checked_at: String,
    pub renew_before_days: u32,
    pub certificates: Vec<LeafExpiry>,
    pub authorities: Vec<AuthorityExpiry>,
}

impl ExpiryReport {
    /// Whether anything is expired or inside the renewal window.
    pub fn needs_attention(&self) -> bool {
        self.certificates
            .iter()
            .any(|c| c.standing != Standing::Valid)
            || self
                .authorities
                .iter()
                .any(|a| a.standing != Standing::Valid)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(
        "there is no complete bundle at {path}. Fix: run `kubepki recreate` first (or check pki.bundle in cluster.toml)."
    )]
    NoBundle { path: String },
    #[error("cannot read {path}: {source}. Fix: check the bundle folder is readable.")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} holds no PEM certificate{detail}. Fix: re-create it with `kubepki recreate --force`, or restore it from git."
    )]
    NotACertificate { path: String, detail: String },
}

/// A parsed CA certificate from a trust bundle.
struct TrustedCa {
    authority: Authority,
    path: PathBuf,
    previous: bool,
    der: Vec<u8>,
}

/// Reads every CA and leaf certificate `plan` names from the bundle at `bundle_dir` and assesses
/// it at `now`.
pub fn examine(
    bundle_dir: &Path,
    plan: &Plan,
    renew_before_days: u32,
    now: OffsetDateTime,
) -> Result<ExpiryReport, CheckError> {
    if !bundle_dir.join("ca").is_dir() {
        return Err(CheckError::NoBundle {
            path: bundle_dir.display().to_string(),
        });
    }
    let window = i64::from(renew_before_days) * 86_400;
    let standing = |residual: i64| {
        if residual <= 0 {
            Standing::Expired
        } else if residual <= window {
            Standing::RenewalDue
        } else {
            Standing::Valid
        }
    };

    let mut cas = Vec::new();
    for authority in &plan.authorities {
        let path = bundle_dir.join(&authority.cert_file);
        if !path.exists() {
            return Err(CheckError::NoBundle {
                path: bundle_dir.display().to_string(),
            });
        }
        for (position, der) in read_pem_certificates(&path)?.into_iter().enumerate() {
            cas.push(TrustedCa {
                authority: authority.authority,
                path: path.clone(),
                previous: position > 0,
                der,
            });
        }
    }
    // Step 1 of a rotation: the manifest names the CA that is trusted but does not sign yet.
    let pending: Vec<String> =
        std::fs::read(bundle_dir.join(crate::bundle::manifest::MANIFEST_FILE))
            .ok()
            .and_then(|bytes| crate::bundle::Manifest::from_json(&bytes).ok())
            .map(|m| {
                m.authorities
                    .into_values()
                    .filter_map(|e| e.pending)
                    .collect()
            })
            .unwrap_or_default();
    let mut authorities = Vec::new();
    for ca in &cas {
        let cert = parse(&ca.der, &ca.path)?;
        let not_after = cert.validity().not_after.timestamp();
        let residual = not_after - now.unix_timestamp();
        authorities.push(AuthorityExpiry {
            authority: ca.authority,
            role: if pending.contains(&fingerprint(&ca.der)) {
                "pending"
            } else if ca.previous {
                "previous"
            } else {
                "signing"
            },
            fingerprint: fingerprint(&ca.der),
            expires: rfc3339(not_after),
            residual_seconds: residual,
            standing: standing(residual),
        });
    }

    let mut certificates = Vec::new();
    for planned in &plan.certificates {
        let path = bundle_dir.join(&planned.cert_file);
        let shown = planned.cert_file.clone();
        if !path.exists() {
            certificates.push(LeafExpiry {
                certificate: shown,
                common_name: planned.common_name.clone(),
                expires: String::new(),
                residual_seconds: 0,
                authority: None,
                previous_ca: false,
                standing: Standing::Missing,
            });
            continue;
        }
        let Some(der) = read_pem_certificates(&path)?.into_iter().next() else {
            continue;
        };
        let cert = parse(&der, &path)?;
        let signer = cas.iter().find(|ca| {
            X509Certificate::from_der(&ca.der).is_ok_and(|(_, ca_cert)| {
                ca_cert.subject() == cert.issuer()
                    && cert.verify_signature(Some(ca_cert.public_key())).is_ok()
            })
        });
        let not_after = cert.validity().not_after.timestamp();
        let residual = not_after - now.unix_timestamp();
        certificates.push(LeafExpiry {
            certificate: shown,
            common_name: common_name(&cert),
            expires: rfc3339(not_after),
            residual_seconds: residual,
            authority: signer.map(|ca| ca.authority),
            previous_ca: signer.is_some_and(|ca| ca.previous),
            standing: standing(residual),
        });
    }
    Ok(ExpiryReport {
        checked_at: rfc3339(now.unix_timestamp()),
        renew_before_days,
        certificates,
        authorities,
    })
}

use x509_parser::prelude::FromDer as _;

fn parse<'a>(der: &'a [u8], path: &Path) -> Result<X509Certificate<'a>, CheckError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| CheckError::NotACertificate {
            path: path.display().to_string(),
            detail: format!(" (DER: {e})"),
        })
}

/// The DER of every `CERTIFICATE` block in a PEM file, in order.
pub fn read_pem_certificates(path: &Path) -> Result<Vec<Vec<u8>>, CheckError> {
    let bytes = fs::read(path).map_err(|source| CheckError::Unreadable {
        path: path.display().to_string(),
        source,
    })?;
    let mut ders = Vec::new();
    for pem in Pem::iter_from_buffer(&bytes) {
        let pem = pem.map_err(|e| CheckError::NotACertificate {
            path: path.display().to_string(),
            detail: format!(" ({e})"),
        })?;
        if pem.label == "CERTIFICATE" {
            ders.push(pem.contents);
        }
    }
    if ders.is_empty() {
        return Err(CheckError::NotACertificate {
            path: path.display().to_string(),
            detail: String::new(),
        });
    }
    Ok(ders)
}

/// `sha256:<hex>` of a certificate's DER, the form pins use.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(der)))
}

fn common_name(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_string()
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// `Nov 23, 2027 12:00 UTC`, the way kubeadm prints expiry.
fn kubeadm_date(rfc: &str) -> String {
    let format =
        time::macros::format_description!("[month repr:short] [day], [year] [hour]:[minute] UTC");
    OffsetDateTime::parse(rfc, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| rfc.to_string())
}

/// kubeadm's short human duration: `45s`, `12m`, `30h`, `364d`, `9y`; `expired` when past.
pub fn residual(seconds: i64) -> String {
    if seconds <= 0 {
        return "expired".into();
    }
    let (minutes, hours) = (seconds / 60, seconds / 3600);
    if seconds < 60 {
        format!("{seconds}s")
    } else if minutes < 60 {
        format!("{minutes}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

fn tone(standing: Standing) -> Tone {
    match standing {
        Standing::Valid => Tone::Plain,
        Standing::Missing | Standing::RenewalDue => Tone::Warning,
        Standing::Expired => Tone::Bad,
    }
}

/// The two tables `kubepki check` prints.
pub fn render(report: &ExpiryReport, colour: bool) -> String {
    let mut leaves = Table::new([
        "CERTIFICATE",
        "EXPIRES",
        "RESIDUAL TIME",
        "CERTIFICATE AUTHORITY",
    ]);
    for leaf in &report.certificates {
        let authority = match (leaf.authority, leaf.previous_ca) {
            (Some(a), false) => a.to_string(),
            (Some(a), true) => format!("{a} (previous CA)"),
            (None, _) if leaf.standing == Standing::Missing => "-".into(),
            (None, _) => "unknown (no CA in the bundle signed it)".into(),
        };
        let (expires, left) = if leaf.standing == Standing::Missing {
            ("not issued yet".to_string(), "-".to_string())
        } else {
            (kubeadm_date(&leaf.expires), residual(leaf.residual_seconds))
        };
        leaves.row(
            vec![
                leaf.certificate.trim_end_matches(".crt").to_string(),
                expires,
                left,
                authority,
            ],
            tone(leaf.standing),
        );
    }
    let mut cas = Table::new([
        "CERTIFICATE AUTHORITY",
        "EXPIRES",
        "RESIDUAL TIME",
        "ROLE",
        "FINGERPRINT",
    ]);
    for ca in &report.authorities {
        cas.row(
            vec![
                ca.authority.to_string(),
                kubeadm_date(&ca.expires),
                residual(ca.residual_seconds),
                ca.role.to_string(),
                ca.fingerprint.clone(),
            ],
            tone(ca.standing),
        );
    }
    let attention = report
        .certificates
        .iter()
        .map(|c| c.standing)
        .chain(report.authorities.iter().map(|a| a.standing))
        .filter(|s| *s != Standing::Valid)
        .count();
    let summary = if attention == 0 {
        format!(
            "All certificates are valid for more than {} days (pki.renew_before_days).\n",
            report.renew_before_days
        )
    } else {
        format!(
            "{attention} certificate(s) missing, expired or within {} days of expiry. Fix: `kubepki recreate` re-issues them (or `kubepki renew --all`), then deploy.\n",
            report.renew_before_days
        )
    };
    format!(
        "{}\n{}\n{summary}",
        leaves.render(colour),
        cas.render(colour)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_time_reads_like_kubeadm() {
        assert_eq!(residual(-5), "expired");
        assert_eq!(residual(59), "59s");
        assert_eq!(residual(3600 * 47), "47h");
        assert_eq!(residual(86_400 * 364), "364d");
        assert_eq!(residual(86_400 * 3650), "10y");
    }
}

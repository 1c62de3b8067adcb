//! Expiry metrics for node-exporter's textfile collector.
//!
//! Writes `<dir>/kubepki.prom` atomically (node-exporter must never read half
//! a file): days left per installed certificate, labelled by material
//! (`apiserver`, `kubernetes-ca`; for a trust bundle, its earliest-expiring CA), the live generation and the time of the last
//! successful activation. Alerting thresholds belong in Prometheus, not here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::ActivateError;
use super::verify::{CertificateExpiry, days_left};

/// The file name node-exporter picks up (`*.prom`).
pub const FILE: &str = "kubepki.prom";

/// The text exposition of the node's certificate expiry.
pub fn render(node: &str, certificates: &[CertificateExpiry], generation: u64, now: i64) -> String {
    let node = escape(node);
    let mut out = String::new();
    out.push_str(
        "# HELP kubepki_certificate_expiry_days Days until the installed certificate expires.\n",
    );
    out.push_str("# TYPE kubepki_certificate_expiry_days gauge\n");
    for c in certificates {
        let _ = writeln!(
            out,
            "kubepki_certificate_expiry_days{{certificate=\"{}\",node=\"{node}\"}} {:.1}",
            escape(&c.material),
            days_left(c.not_after, now)
        );
    }
    out.push_str("# HELP kubepki_certificate_not_after_seconds Expiry of the installed certificate, Unix seconds.\n");
    out.push_str("# TYPE kubepki_certificate_not_after_seconds gauge\n");
    for c in certificates {
        let _ = writeln!(
            out,
            "kubepki_certificate_not_after_seconds{{certificate=\"{}\",node=\"{node}\"}} {}",
            escape(&c.material),
            c.not_after
        );
    }
    out.push_str("# HELP kubepki_generation The live kubepki generation on this node.\n");
    out.push_str("# TYPE kubepki_generation gauge\n");
    let _ = writeln!(out, "kubepki_generation{{node=\"{node}\"}} {generation}");
    out.push_str("# HELP kubepki_activation_timestamp_seconds When activation last succeeded.\n");
    out.push_str("# TYPE kubepki_activation_timestamp_seconds gauge\n");
    let _ = writeln!(
        out,
        "kubepki_activation_timestamp_seconds{{node=\"{node}\"}} {now}"
    );
    out
}

/// Writes the metrics file into `dir` atomically.
pub fn write(dir: &Path, text: &str) -> Result<PathBuf, ActivateError> {
    let path = dir.join(FILE);
    crate::atomic::write(&path, text.as_bytes(), 0o644).map_err(|source| {
        ActivateError::Metrics {
            path: path.clone(),
            source,
        }
    })?;
    Ok(path)
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_series_per_certificate_with_days_left() {
        let text = render(
            "x",
            &[CertificateExpiry {
                material: "apiserver".into(),
                install: "apiserver.crt".into(),
                not_after: 86_400 * 365,
            }],
            3,
            8640,
        );
        assert!(
            text.contains(
                "kubepki_certificate_expiry_days{certificate=\"apiserver\",node=\"x\"} 364.9\n"
            ),
            "{text}"
        );
        assert!(text.contains("kubepki_generation{node=\"x\"} 3\n"));
    }
}

//! The plan as a person reads it: per node, each certificate with its subject, SANs and issuer.

use std::fmt::Write;

use super::{Part, Plan};

/// A readable listing of the plan, grouped by node.
pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster {}: {} certificates, {} sealed keys, {} ({} days CA, {} days leaf)",
        plan.cluster,
        plan.certificates.len(),
        plan.sealed_key_count(),
        plan.algorithm,
        plan.ca_validity_days,
        plan.leaf_validity_days
    );
    let _ = writeln!(out, "\nauthorities:");
    for a in &plan.authorities {
        let holders = if a.key_holders.is_empty() {
            "operators".to_string()
        } else {
            format!("operators, {}", a.key_holders.join(", "))
        };
        let _ = writeln!(
            out,
            "  {:<12} CN={:<16} key -> {holders}",
            a.authority.name(),
            a.common_name
        );
    }
    for node in &plan.nodes {
        let roles: Vec<&str> = node.roles.iter().map(|r| r.name()).collect();
        let _ = writeln!(out, "\n{} ({}):", node.name, roles.join(", "));
        for file in node.files.iter().filter(|f| f.part == Part::Certificate) {
            let Some(cert) = plan
                .certificates
                .iter()
                .find(|c| c.cert_file == file.source)
            else {
                continue;
            };
            let mut subject = format!("CN={}", cert.common_name);
            for o in &cert.organizations {
                let _ = write!(subject, ",O={o}");
            }
            let usages: Vec<&str> = cert
                .usages
                .iter()
                .map(|u| match u {
                    super::Usage::ServerAuth => "server",
                    super::Usage::ClientAuth => "client",
                })
                .collect();
            let _ = writeln!(
                out,
                "  {:<30} {:<48} {:<13} by {}",
                file.install,
                subject,
                usages.join("+"),
                cert.issuer
            );
            if !cert.sans.is_empty() {
                let sans: Vec<String> = cert.sans.iter().map(ToString::to_string).collect();
                let _ = writeln!(out, "  {:<30} SANs: {}", "", sans.join(", "));
            }
        }
        let secrets: Vec<&str> = node
            .files
            .iter()
            .filter(|f| f.part == Part::Secret)
            .map(|f| f.install.as_str())
            .collect();
        let _ = writeln!(out, "  keys: {}", secrets.join(", "));
        let kubeconfigs: Vec<&str> = node
            .kubeconfigs
            .iter()
            .map(|k| k.install.as_str())
            .collect();
        let _ = writeln!(out, "  kubeconfigs: {}", kubeconfigs.join(", "));
    }
    out
}

//! `kubepki check`: the expiry report read from the certificates, its tables, its JSON, and its
//! exit status inside the renewal window.

mod lifecycle_support;

use lifecycle_support::Workspace;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// A workspace whose leaves live 40 days with a 30-day renewal window, bundle created now.
fn short_lived() -> Workspace {
    let ws = Workspace::new();
    ws.edit_inventory(|t| t.replace("leaf_validity_days = 365", "leaf_validity_days = 40"));
    ws.ok(&["recreate"]);
    ws
}

fn at(days: i64) -> String {
    (OffsetDateTime::now_utc() + Duration::days(days))
        .format(&Rfc3339)
        .unwrap()
}

#[test]
fn fresh_certificates_pass_and_print_kubeadm_style_tables() {
    let ws = short_lived();
    let out = ws.kubepki(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "CERTIFICATE",
            "EXPIRES",
            "RESIDUAL TIME",
            "CERTIFICATE AUTHORITY"
        ]
    );
    let apiserver = text
        .lines()
        .find(|l| l.starts_with("nodes/ec2-controlplane/apiserver "))
        .unwrap();
    assert!(
        apiserver.contains(" 39d ") || apiserver.contains(" 40d "),
        "{apiserver}"
    );
    assert!(apiserver.trim_end().ends_with("kubernetes"), "{apiserver}");
    let etcd_client = text
        .lines()
        .find(|l| l.starts_with("nodes/ec2-controlplane/apiserver-etcd-client "))
        .unwrap();
    assert!(etcd_client.trim_end().ends_with("etcd"), "{etcd_client}");
    assert!(text.contains("\nCERTIFICATE AUTHORITY   EXPIRES"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no colours when stdout is not a terminal"
    );
}

#[test]
fn inside_the_renewal_window_exits_non_zero_and_says_so() {
    let ws = short_lived();
    let out = ws.kubepki(&["check", "--now", &at(15)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("27 certificate(s) missing, expired or within 30 days"),
        "{text}"
    );

    let json = ws.kubepki(&["check", "--json", "--now", &at(15)]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let certificates = report["certificates"].as_array().unwrap();
    assert_eq!(certificates.len(), 27);
    assert!(certificates.iter().all(|c| c["standing"] == "renewal-due"));
    assert!(
        report["authorities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["standing"] == "valid" && a["role"] == "signing")
    );
    let kubelet = certificates
        .iter()
        .find(|c| c["certificate"] == "nodes/laptop-ultra/kubelet-client.crt")
        .unwrap();
    assert_eq!(kubelet["common_name"], "system:node:laptop-ultra");
    assert_eq!(kubelet["authority"], "kubernetes");
    let residual = kubelet["residual_seconds"].as_i64().unwrap();
    assert!(
        (24 * 86_400..=25 * 86_400 + 600).contains(&residual),
        "{residual}"
    );

    let expired = ws.kubepki(&["check", "--json", "--now", &at(41)]);
    assert_eq!(expired.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&expired.stdout).unwrap();
    assert!(
        report["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["standing"] == "expired")
    );
}

#[test]
fn dates_come_from_the_certificates_not_the_manifest() {
    let ws = short_lived();
    // Claim in the manifest that every certificate lives for decades: check must not believe it.
    let manifest = ws.bundle().join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    for entry in value["files"].as_object_mut().unwrap().values_mut() {
        if entry.get("not_after").is_some() {
            entry["not_after"] = "2099-01-01T00:00:00Z".into();
        }
    }
    std::fs::write(&manifest, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    let out = ws.kubepki(&["check", "--now", &at(15)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_planned_certificate_missing_from_the_bundle_is_reported() {
    let ws = Workspace::new();
    ws.ok(&["recreate"]);
    // worker-0007 sits at 192.168.0.8, inside the example's LAN.
    ws.edit_inventory(|t| format!("{t}\n{}", lifecycle_support::synthetic_worker(7)));
    let out = ws.kubepki(&["check", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let missing: Vec<&str> = report["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["standing"] == "missing")
        .map(|c| c["certificate"].as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        [
            "nodes/worker-0007/kubelet-client.crt",
            "nodes/worker-0007/kubelet-serving.crt",
            "nodes/worker-0007/kube-proxy.crt",
            "nodes/worker-0007/calico-cni.crt"
        ]
    );
}

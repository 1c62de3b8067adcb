//! `kubepki plan`: the diff before acting, with the reason of every re-issue, as a table (no
//! colours off a terminal) and as JSON.

mod lifecycle_support;

use lifecycle_support::Workspace;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

fn diff(ws: &Workspace, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["plan", "--json"];
    args.extend_from_slice(extra);
    let out = ws.ok(&args);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    value["diff"].clone()
}

fn reasons(diff: &serde_json::Value, action: &str) -> Vec<(String, String)> {
    diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == action)
        .map(|c| {
            (
                c["material"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_new_api_endpoint_reissues_only_the_api_server_for_its_sans() {
    let ws = Workspace::new();
    ws.ok(&["recreate"]);
    assert_eq!(
        diff(&ws, &[])["summary"],
        serde_json::json!({"add": 0, "reissue": 0, "reseal": 0, "remove": 0, "retire": 0})
    );
    ws.edit_inventory(|t| {
        t.replace(
            "endpoints = [\n",
            "endpoints = [\n  \"api.ducksnest.example\",\n",
        )
    });
    let d = diff(&ws, &[]);
    assert_eq!(
        reasons(&d, "reissue"),
        [(
            "nodes/ec2-controlplane/apiserver".to_string(),
            "SAN change".to_string()
        )]
    );
    let table = ws.ok(&["plan"]);
    let line = table
        .lines()
        .find(|l| l.starts_with("re-issue "))
        .unwrap_or_else(|| panic!("{table}"));
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        [
            "re-issue",
            "nodes/ec2-controlplane/apiserver",
            "SAN",
            "change"
        ]
    );
    assert!(table.contains("0 to add, 1 to re-issue, 0 to re-seal, 0 to remove."));
    assert!(!table.contains('\x1b'));
}

#[test]
fn expiry_validity_and_removal_each_say_why() {
    let ws = Workspace::new();
    ws.ok(&["recreate"]);
    // Looking from 340 days on, every leaf is inside the 30-day window.
    let later = (OffsetDateTime::now_utc() + Duration::days(340))
        .format(&Rfc3339)
        .unwrap();
    let d = diff(&ws, &["--now", &later]);
    let reissued = reasons(&d, "reissue");
    assert_eq!(reissued.len(), 27);
    assert!(
        reissued
            .iter()
            .all(|(_, r)| r.starts_with("expiry (not after ")),
        "{reissued:?}"
    );

    // A different validity re-issues everything for that reason; a removed node is removed.
    ws.edit_inventory(|t| {
        let t = t.replace("leaf_validity_days = 365", "leaf_validity_days = 200");
        let start = t.find("[[nodes]]\nname = \"laptop-old\"").unwrap();
        t[..start].to_string()
    });
    let d = diff(&ws, &[]);
    let reissued = reasons(&d, "reissue");
    assert_eq!(reissued.len(), 23);
    assert!(
        reissued.iter().all(|(_, r)| r == "validity change"),
        "{reissued:?}"
    );
    let removed = reasons(&d, "remove");
    assert_eq!(removed.len(), 8, "{removed:?}");
    assert!(
        removed.iter().all(
            |(path, r)| path.starts_with("nodes/laptop-old/") && r == "node laptop-old removed"
        )
    );
}

#[test]
fn a_new_operator_recipient_reseals_every_key_and_reissues_nothing() {
    let ws = Workspace::new();
    ws.ok(&["recreate"]);
    // A second key for the operator, made here with ssh-keygen.
    let key = ws.root().join("second_operator_key");
    let made = lifecycle_support::tool("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "second", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let second = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    ws.edit_inventory(|t| {
        t.replace(
            "operator-TEST-KEY\",\n",
            &format!("operator-TEST-KEY\",\n  \"{}\",\n", second.trim()),
        )
    });
    let d = diff(&ws, &[]);
    assert_eq!(d["summary"]["reissue"], 0);
    let resealed = reasons(&d, "reseal");
    // 3 CA keys, 27 leaf keys, the service-account key and the encryption config.
    assert_eq!(resealed.len(), 32, "{resealed:?}");
    assert!(resealed.iter().all(|(_, r)| r == "recipients changed"));
}

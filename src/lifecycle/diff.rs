//! The plan diff: what a run will add, re-issue (and why), re-seal and remove, for people.
//!
//! The decision itself is the pipeline's pure [`Changes`]; this module only
//! presents it: a table for `kubepki plan` (colours on a terminal only), a
//! JSON document for `--json`, and the commit subject and per-file reasons
//! that [`crate::publish`] writes. It decides nothing and reads no file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use super::rotation::Rotation;
use super::table::{Table, Tone};
use crate::bundle::changes::{Changes, Reason};
use crate::bundle::manifest::{InputPart, MANIFEST_FILE};
use crate::plan::Plan;
use crate::publish::{ChangedFile, FileChange, Publication};

/// What happens to one piece of material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Add,
    Reissue,
    Reseal,
    /// The trust bundle drops the CA being rotated out.
    Retire,
    Remove,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Reissue => "re-issue",
            Action::Reseal => "re-seal",
            Action::Retire => "retire old CA",
            Action::Remove => "remove",
        }
    }

    fn tone(self) -> Tone {
        match self {
            Action::Add => Tone::Good,
            Action::Reissue | Action::Reseal | Action::Retire => Tone::Warning,
            Action::Remove => Tone::Bad,
        }
    }
}

/// One line of the diff: a material (or a removed file), what happens to it, why, and the
/// bundle files it touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    pub action: Action,
    /// Material id (`nodes/laptop-ultra/kubelet-client`, `ca/etcd`, `cluster/service-account`)
    /// or, for removals, the bundle path.
    pub material: String,
    pub reason: String,
    /// Bundle paths written or deleted, relative to the bundle folder.
    pub files: Vec<(String, FileChange)>,
}

/// The readable reason of a re-issue.
pub fn reason_text(reason: &Reason) -> String {
    match reason {
        Reason::InputsChanged { parts } if !parts.is_empty() => {
            let labels: Vec<String> = parts
                .iter()
                .map(|p| match p {
                    InputPart::Sans => "SAN change".to_string(),
                    other => format!("{} change", other.label()),
                })
                .collect();
            labels.join(", ")
        }
        Reason::InputsChanged { .. } => "inputs changed".into(),
        Reason::Expiring { not_after } => format!("expiry (not after {not_after})"),
        Reason::IssuerChanged => "new signing CA".into(),
        Reason::Forced => "renewal requested".into(),
        Reason::TrustChanged => "CA rotation".into(),
    }
}

/// Every change as diff lines, in the order added, re-issued, re-sealed, removed.
pub fn lines(plan: &Plan, changes: &Changes) -> Vec<DiffLine> {
    lines_for(plan, changes, None)
}

/// [`lines`] for a run that is a CA rotation step: a finished rotation's republished CAs read
/// as "retire old CA" rather than as re-issues.
pub fn lines_for(plan: &Plan, changes: &Changes, rotation: Option<Rotation>) -> Vec<DiffLine> {
    // Indexes, so that a 1000-node first run stays linear.
    let certificates: HashMap<&str, &crate::plan::CertificatePlan> = plan
        .certificates
        .iter()
        .map(|c| (c.id.as_str(), c))
        .collect();
    let added: HashSet<&str> = changes.added.iter().map(String::as_str).collect();
    let nodes: HashSet<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
    let files_of = |id: &str, keys_only: bool| -> Vec<String> {
        if let Some(authority) = plan
            .authorities
            .iter()
            .find(|a| crate::bundle::changes::authority_id(a.authority) == id)
        {
            return if keys_only {
                vec![authority.key_file.clone()]
            } else {
                vec![authority.cert_file.clone(), authority.key_file.clone()]
            };
        }
        if let Some(certificate) = certificates.get(id) {
            return if keys_only {
                vec![certificate.key_file.clone()]
            } else {
                vec![certificate.cert_file.clone(), certificate.key_file.clone()]
            };
        }
        if let Some(secret) = plan.secrets.iter().find(|s| s.id == id) {
            let mut files = vec![secret.key_file.clone()];
            if !keys_only {
                files.extend(secret.public_file.clone());
            }
            return files;
        }
        Vec::new()
    };
    let next_key_of = |id: &str| -> Option<String> {
        plan.authorities
            .iter()
            .find(|a| crate::bundle::changes::authority_id(a.authority) == id)
            .map(|a| crate::bundle::manifest::next_key_file(&a.key_file))
    };
    // A node is new when every certificate it owns is being added.
    let mut node_added: BTreeMap<&str, bool> = BTreeMap::new();
    for certificate in &plan.certificates {
        if let Some(node) = &certificate.node {
            let added = added.contains(certificate.id.as_str());
            node_added
                .entry(node.as_str())
                .and_modify(|all| *all &= added)
                .or_insert(added);
        }
    }
    let mut out = Vec::new();
    for id in &changes.added {
        let node = certificates
            .get(id.as_str())
            .and_then(|c| c.node.as_deref());
        let reason = match node {
            Some(node) if node_added.get(node) == Some(&true) => format!("new node {node}"),
            Some(_) => "new certificate (role or profile added)".to_string(),
            None if id.starts_with("ca/") => "new certificate authority".to_string(),
            None => "new cluster-wide material".to_string(),
        };
        out.push(DiffLine {
            action: Action::Add,
            material: id.clone(),
            reason,
            files: with(files_of(id, false), FileChange::Added),
        });
    }
    for (id, reason) in &changes.reissued {
        if *reason == Reason::TrustChanged && rotation == Some(Rotation::Finish) {
            out.push(DiffLine {
                action: Action::Retire,
                material: id.clone(),
                reason: "CA rotation finished: the previous CA leaves the trust bundle".into(),
                files: with(files_of(id, false), FileChange::Modified),
            });
            continue;
        }
        let mut files = with(files_of(id, false), FileChange::Modified);
        let mut text = reason_text(reason);
        if *reason == Reason::TrustChanged {
            // The pending CA's sealed key: added by step 1, dropped when its authority is
            // republished (step 2).
            if let Some(next) = next_key_of(id) {
                if rotation == Some(Rotation::Start) {
                    text = "CA rotation: new CA trusted, does not sign yet".into();
                    files.push((next, FileChange::Added));
                } else if changes.removed.contains(&next) {
                    files.push((next, FileChange::Deleted));
                }
            }
        }
        out.push(DiffLine {
            action: Action::Reissue,
            material: id.clone(),
            reason: text,
            files,
        });
    }
    for id in &changes.resealed {
        out.push(DiffLine {
            action: Action::Reseal,
            material: id.clone(),
            reason: "recipients changed".into(),
            files: with(files_of(id, true), FileChange::Modified),
        });
    }
    let republished: HashSet<String> = changes
        .reissued
        .iter()
        .filter(|(_, r)| *r == Reason::TrustChanged)
        .filter_map(|(id, _)| next_key_of(id))
        .collect();
    for path in &changes.removed {
        if republished.contains(path) {
            continue;
        }
        let reason = match node_of_path(path) {
            Some(node) if !nodes.contains(node) => format!("node {node} removed"),
            _ => "no longer planned".to_string(),
        };
        out.push(DiffLine {
            action: Action::Remove,
            material: path.clone(),
            reason,
            files: vec![(path.clone(), FileChange::Deleted)],
        });
    }
    out
}

fn with(files: Vec<String>, change: FileChange) -> Vec<(String, FileChange)> {
    files.into_iter().map(|f| (f, change)).collect()
}

fn node_of_path(path: &str) -> Option<&str> {
    path.strip_prefix("nodes/")?.split('/').next()
}

/// The table `kubepki plan` prints, and a one-line summary; "nothing to do" when empty.
pub fn render(lines: &[DiffLine], colour: bool) -> String {
    if lines.is_empty() {
        return "No changes: the bundle matches the inventory.\n".into();
    }
    let mut table = Table::new(["ACTION", "MATERIAL", "REASON"]);
    for line in lines {
        table.row(
            vec![
                line.action.word().to_string(),
                line.material.clone(),
                line.reason.clone(),
            ],
            line.action.tone(),
        );
    }
    let count = |action| lines.iter().filter(|l| l.action == action).count();
    format!(
        "{}\n{} to add, {} to re-issue, {} to re-seal, {} to remove{}.\n",
        table.render(colour),
        count(Action::Add),
        count(Action::Reissue),
        count(Action::Reseal),
        count(Action::Remove),
        match count(Action::Retire) {
            0 => String::new(),
            n => format!(", {n} old CA(s) to drop"),
        }
    )
}

/// The `--json` document: the diff lines and the summary counts.
pub fn to_json(lines: &[DiffLine]) -> serde_json::Value {
    let count = |action| lines.iter().filter(|l| l.action == action).count();
    serde_json::json!({
        "changes": lines,
        "summary": {
            "add": count(Action::Add),
            "reissue": count(Action::Reissue),
            "reseal": count(Action::Reseal),
            "remove": count(Action::Remove),
            "retire": count(Action::Retire),
        }
    })
}

/// The commit subject: `kubepki: add node laptop-ultra (5 certs); renew 2 expiring`.
pub fn subject(plan: &Plan, lines: &[DiffLine]) -> String {
    let mut parts = Vec::new();
    let certificates: HashSet<&str> = plan.certificates.iter().map(|c| c.id.as_str()).collect();
    let is_certificate = |material: &str| certificates.contains(material);
    let fresh = lines
        .iter()
        .any(|l| l.action == Action::Add && l.material.starts_with("ca/"));
    if fresh {
        let certs = lines
            .iter()
            .filter(|l| l.action == Action::Add && is_certificate(&l.material))
            .count();
        parts.push(format!("create the {} PKI ({} certs)", plan.cluster, certs));
    } else {
        let mut new_nodes: BTreeMap<&str, usize> = BTreeMap::new();
        let mut other_added = 0;
        for line in lines.iter().filter(|l| l.action == Action::Add) {
            match line.reason.strip_prefix("new node ") {
                Some(node) if is_certificate(&line.material) => {
                    *new_nodes.entry(node).or_default() += 1
                }
                _ => other_added += 1,
            }
        }
        for (node, certs) in new_nodes {
            parts.push(format!(
                "add node {node} ({certs} {})",
                plural(certs, "cert")
            ));
        }
        if other_added > 0 {
            parts.push(format!(
                "add {other_added} {}",
                plural(other_added, "certificate")
            ));
        }
    }
    // Groups of re-issues in a fixed order: rotation first, then renewals, then input changes.
    let mut reissue: Vec<(String, usize)> = Vec::new();
    for line in lines.iter().filter(|l| l.action == Action::Reissue) {
        let group = if line.reason == "CA rotation" {
            "rotate {} CAs".to_string()
        } else if line.reason == "CA rotation: new CA trusted, does not sign yet" {
            "trust {} new CAs (CA rotation step 1 of 3)".to_string()
        } else if line.reason == "new signing CA" {
            "re-issue {} certs from the new CA".to_string()
        } else if line.reason.starts_with("expiry") {
            "renew {} expiring".to_string()
        } else if line.reason == "renewal requested" {
            let named: Vec<&str> = lines
                .iter()
                .filter(|l| l.action == Action::Reissue && l.reason == "renewal requested")
                .map(|l| l.material.as_str())
                .collect();
            if named.len() <= 3 {
                format!("renew {}", named.join(", "))
            } else {
                "renew {} certs".to_string()
            }
        } else {
            format!("re-issue {{}} certs ({})", line.reason)
        };
        match reissue.iter_mut().find(|(g, _)| *g == group) {
            Some((_, n)) => *n += 1,
            None => reissue.push((group, 1)),
        }
    }
    for (group, n) in reissue {
        let text = group.replacen("{}", &n.to_string(), 1);
        parts.push(if n == 1 {
            text.replace(" certs", " cert").replace(" CAs", " CA")
        } else {
            text
        });
    }
    let resealed = lines.iter().filter(|l| l.action == Action::Reseal).count();
    if resealed > 0 {
        parts.push(format!(
            "re-seal {resealed} {} (recipients changed)",
            plural(resealed, "key")
        ));
    }
    let retired = lines.iter().filter(|l| l.action == Action::Retire).count();
    if retired > 0 {
        parts.push(format!(
            "finish CA rotation (drop {retired} old {})",
            plural(retired, "CA")
        ));
    }
    let mut removed_nodes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut other_removed = 0;
    for line in lines.iter().filter(|l| l.action == Action::Remove) {
        match line
            .reason
            .strip_prefix("node ")
            .and_then(|r| r.strip_suffix(" removed"))
        {
            Some(node) => *removed_nodes.entry(node).or_default() += 1,
            None => other_removed += 1,
        }
    }
    for node in removed_nodes.keys() {
        parts.push(format!("remove node {node}"));
    }
    if other_removed > 0 {
        parts.push(format!(
            "remove {other_removed} {}",
            plural(other_removed, "file")
        ));
    }
    if parts.is_empty() {
        parts.push("update the bundle manifest".into());
    }
    format!("kubepki: {}", parts.join("; "))
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// What `publish` commits for these lines: their files under `bundle_dir`, the manifest, and
/// `inventory` when the run rewrote it (CA pins).
pub fn publication(
    plan: &Plan,
    changes: &Changes,
    lines: &[DiffLine],
    bundle_dir: &Path,
    inventory: Option<(&Path, &str)>,
) -> Publication {
    let mut files: Vec<ChangedFile> = Vec::new();
    for line in lines {
        for (path, change) in &line.files {
            files.push(ChangedFile {
                path: bundle_dir.join(path),
                change: *change,
                reason: line.reason.clone(),
            });
        }
    }
    if !files.is_empty() || changes.manifest_changed {
        let fresh = lines
            .iter()
            .any(|l| l.action == Action::Add && l.material.starts_with("ca/"));
        files.push(ChangedFile {
            path: bundle_dir.join(MANIFEST_FILE),
            change: if fresh {
                FileChange::Added
            } else {
                FileChange::Modified
            },
            reason: "bundle index".into(),
        });
    }
    if let Some((path, why)) = inventory {
        files.push(ChangedFile {
            path: path.to_path_buf(),
            change: FileChange::Modified,
            reason: why.to_string(),
        });
    }
    Publication {
        subject: subject(plan, lines),
        files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::InputPart;

    fn example_plan() -> Plan {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("hosts/cluster.toml");
        crate::plan::plan(&crate::inventory::Inventory::load(&path).unwrap())
    }

    #[test]
    fn a_new_node_and_renewals_read_as_one_subject() {
        let plan = example_plan();
        let changes = Changes {
            added: [
                "kubelet-client",
                "kubelet-serving",
                "kube-proxy",
                "calico-cni",
            ]
            .iter()
            .map(|m| format!("nodes/laptop-ultra/{m}"))
            .collect(),
            reissued: vec![
                (
                    "nodes/laptop-old/kube-proxy".into(),
                    Reason::Expiring {
                        not_after: "2027-01-01T00:00:00Z".into(),
                    },
                ),
                (
                    "nodes/laptop-old/calico-cni".into(),
                    Reason::Expiring {
                        not_after: "2027-01-01T00:00:00Z".into(),
                    },
                ),
                (
                    "nodes/ec2-controlplane/apiserver".into(),
                    Reason::InputsChanged {
                        parts: vec![InputPart::Sans],
                    },
                ),
            ],
            ..Changes::default()
        };
        let lines = lines(&plan, &changes);
        assert_eq!(
            subject(&plan, &lines),
            "kubepki: add node laptop-ultra (4 certs); renew 2 expiring; re-issue 1 cert (SAN change)"
        );
        let apiserver = lines
            .iter()
            .find(|l| l.material == "nodes/ec2-controlplane/apiserver")
            .unwrap();
        assert_eq!(
            apiserver.files,
            [
                (
                    "nodes/ec2-controlplane/apiserver.crt".to_string(),
                    FileChange::Modified
                ),
                (
                    "nodes/ec2-controlplane/apiserver.key.age".to_string(),
                    FileChange::Modified
                ),
            ]
        );
        let publication = publication(&plan, &changes, &lines, Path::new("hosts/pki"), None);
        assert_eq!(publication.files.len(), 4 * 2 + 3 * 2 + 1);
        assert!(
            render(&lines, false).contains("4 to add, 3 to re-issue, 0 to re-seal, 0 to remove.")
        );
    }

    #[test]
    fn an_unchanged_bundle_says_so() {
        let plan = example_plan();
        let lines = lines(&plan, &Changes::default());
        assert!(lines.is_empty());
        assert_eq!(
            render(&lines, false),
            "No changes: the bundle matches the inventory.\n"
        );
    }
}

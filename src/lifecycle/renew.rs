//! Which leaf certificates `kubepki renew` re-issues: names resolved against the plan.
//!
//! A name is a certificate id (`nodes/laptop-ultra/kubelet-client`,
//! `cluster/admin`), a material name (`apiserver`: every API server
//! certificate), or a node name (every certificate of that node). CAs are
//! never renewed here (that is `recreate --rotate-ca`). The re-issue itself
//! is the pipeline's, asked through `RecreateOptions::renew`.

use std::collections::BTreeSet;

use crate::plan::{Authority, Plan};

#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error(
        "name no certificate to renew. Fix: give certificate ids (`nodes/<node>/kubelet-client`), material names (`apiserver`), node names, or --all."
    )]
    NothingNamed,
    #[error(
        "`{name}` is a CA; renew re-issues leaf certificates only. Fix: rotate CAs with `kubepki recreate --rotate-ca` (docs/ca-rotation.md)."
    )]
    Authority { name: String },
    #[error(
        "`{name}` is not a certificate, material or node of this cluster{}. Fix: pick one from `kubepki check`.",
        if .suggestions.is_empty() { String::new() } else { format!(" (did you mean {}?)", .suggestions.join(", ")) }
    )]
    Unknown {
        name: String,
        suggestions: Vec<String>,
    },
}

/// The certificate ids `names` (or `all`) select, in plan order.
pub fn select(plan: &Plan, names: &[String], all: bool) -> Result<BTreeSet<String>, RenewError> {
    if all {
        return Ok(plan.certificates.iter().map(|c| c.id.clone()).collect());
    }
    if names.is_empty() {
        return Err(RenewError::NothingNamed);
    }
    let mut selected = BTreeSet::new();
    for name in names {
        let name = name.trim_end_matches(".crt").trim_end_matches('/');
        let is_authority = Authority::ALL
            .iter()
            .any(|a| name == a.name() || name == format!("ca/{}", a.name()));
        if is_authority {
            return Err(RenewError::Authority { name: name.into() });
        }
        let matching: Vec<&str> = plan
            .certificates
            .iter()
            .filter(|c| c.id == name || c.profile.name() == name || c.node.as_deref() == Some(name))
            .map(|c| c.id.as_str())
            .collect();
        if matching.is_empty() {
            let suggestions = plan
                .certificates
                .iter()
                .map(|c| c.id.as_str())
                .filter(|id| {
                    id.contains(name) || name.contains(id.rsplit('/').next().unwrap_or(id))
                })
                .take(3)
                .map(str::to_string)
                .collect();
            return Err(RenewError::Unknown {
                name: name.into(),
                suggestions,
            });
        }
        selected.extend(matching.into_iter().map(str::to_string));
    }
    Ok(selected)
}

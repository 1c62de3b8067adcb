//! Calico VXLAN over Tailscale: the pod MTU, the network lint, and the manifests.
//!
//! [`mtu`] derives the one pod MTU from the inventory's links and
//! encapsulation; [`lint`] finds the settings that break Calico beside
//! Tailscale; [`manifests`] builds the cluster-specific resources (RBAC,
//! ConfigMap, calico-node, kube-controllers, IP pools, FelixConfiguration)
//! and [`cni`] the conflist, all as typed values; [`render`] turns them into
//! one YAML file per concern. Everything up to [`render`] is pure; [`write`]
//! is the only function here that touches the disk.
//!
//! Not here: the Calico CRDs (the NixOS module applies the release's pinned
//! `crds.yaml`) and applying anything to a cluster (a systemd oneshot does).

pub mod cni;
pub mod lint;
pub mod manifests;
pub mod mtu;
pub mod resources;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use manifests::{CalicoResources, RenderOptions, resources};

/// Something that stops the Calico manifests from being rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum CalicoError {
    #[error(
        "`calico.iptables_mark_mask` `{value}` is not a 32-bit mask. Fix: write it in hex, e.g. \"0xff000000\" (`kubepki lint` explains why)."
    )]
    MarkMask { value: String },
    #[error(
        "the certificate plan has no `calico-cni` kubeconfig, so the CNI conflist would point at nothing. Fix: declare at least one node in the inventory; every node gets that kubeconfig."
    )]
    NoCniKubeconfig,
    #[error(
        "cannot serialise the {what} as YAML: {source}. Fix: this is a bug in kubepki; please report it."
    )]
    Yaml {
        what: &'static str,
        source: serde_yaml::Error,
    },
    #[error(
        "cannot serialise the CNI conflist as JSON: {0}. Fix: this is a bug in kubepki; please report it."
    )]
    Json(serde_json::Error),
    #[error("cannot write {}: {source}. Fix: check that the folder exists and is writable.", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One rendered file: its name in the output folder and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub name: &'static str,
    pub contents: String,
}

/// File names in `--out`, numbered in apply order (`kubectl apply -f DIR` sorts by name).
pub const RBAC_FILE: &str = "10-rbac.yaml";
pub const CONFIG_FILE: &str = "20-calico-config.yaml";
pub const FELIX_FILE: &str = "30-felix-configuration.yaml";
pub const IP_POOLS_FILE: &str = "40-ip-pools.yaml";
pub const CALICO_NODE_FILE: &str = "50-calico-node.yaml";
pub const KUBE_CONTROLLERS_FILE: &str = "60-calico-kube-controllers.yaml";
/// Read by the NixOS module; kubectl ignores it (not `.yaml` or `.json`).
pub const CONFLIST_FILE: &str = cni::CONFLIST_NAME;

fn document<T: Serialize>(what: &'static str, value: &T) -> Result<String, CalicoError> {
    serde_yaml::to_string(value)
        .map(|yaml| format!("---\n{yaml}"))
        .map_err(|source| CalicoError::Yaml { what, source })
}

fn documents<T: Serialize>(what: &'static str, values: &[T]) -> Result<String, CalicoError> {
    values.iter().map(|v| document(what, v)).collect()
}

/// Serialises the resources: one multi-document YAML file per concern, and the conflist.
pub fn render(resources: &CalicoResources) -> Result<Vec<RenderedFile>, CalicoError> {
    let rbac = [
        documents("service accounts", &resources.service_accounts)?,
        documents("cluster roles", &resources.cluster_roles)?,
        documents("cluster role bindings", &resources.cluster_role_bindings)?,
    ]
    .concat();
    let mut conflist =
        serde_json::to_string_pretty(&resources.conflist).map_err(CalicoError::Json)?;
    conflist.push('\n');
    Ok(vec![
        RenderedFile {
            name: RBAC_FILE,
            contents: rbac,
        },
        RenderedFile {
            name: CONFIG_FILE,
            contents: document("calico-config ConfigMap", &resources.config)?,
        },
        RenderedFile {
            name: FELIX_FILE,
            contents: document("FelixConfiguration", &resources.felix_configuration)?,
        },
        RenderedFile {
            name: IP_POOLS_FILE,
            contents: documents("IP pools", &resources.ip_pools)?,
        },
        RenderedFile {
            name: CALICO_NODE_FILE,
            contents: document("calico-node DaemonSet", &resources.calico_node)?,
        },
        RenderedFile {
            name: KUBE_CONTROLLERS_FILE,
            contents: document(
                "calico-kube-controllers Deployment",
                &resources.kube_controllers,
            )?,
        },
        RenderedFile {
            name: CONFLIST_FILE,
            contents: conflist,
        },
    ])
}

/// Writes the rendered files into `dir` (created if missing), each atomically.
pub fn write(dir: &Path, files: &[RenderedFile]) -> Result<(), CalicoError> {
    std::fs::create_dir_all(dir).map_err(|source| CalicoError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    for file in files {
        let path = dir.join(file.name);
        crate::atomic::write(&path, file.contents.as_bytes(), 0o644)
            .map_err(|source| CalicoError::Write { path, source })?;
    }
    Ok(())
}

//! The CNI network configuration, `10-calico.conflist`, as the NixOS nodes install it.
//!
//! Stock Calico writes this file from an init container and mints a
//! service-account token for the plugin. kubepki does neither: NixOS puts the
//! `calico` and `calico-ipam` binaries in the CNI bin dir and this file in the
//! CNI config dir, and the plugin authenticates as the `calico-cni` user with
//! the client certificate activation installs. The kubeconfig's file name is
//! taken from the certificate plan, so it is decided in one place.
//!
//! Not done here: choosing a per-node `nodename` (the plugin reads the one
//! calico-node writes to `/var/lib/calico/nodename`).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file name kubelet and containerd look for in the CNI config dir.
pub const CONFLIST_NAME: &str = "10-calico.conflist";
/// The network name Calico's manifests use.
pub const NETWORK_NAME: &str = "k8s-pod-network";
pub const CNI_VERSION: &str = "0.3.1";

/// A CNI network configuration list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfList {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Plugin>,
}

/// One plugin of the chain, told apart by its `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Plugin {
    Calico(Box<CalicoPlugin>),
    Portmap(PortmapPlugin),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalicoPlugin {
    pub log_level: String,
    pub datastore_type: String,
    /// The pod interface MTU: an integer, as the plugin parses it.
    pub mtu: u32,
    pub ipam: Ipam,
    pub policy: Policy,
    pub kubernetes: KubernetesAccess,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam {
    #[serde(rename = "type")]
    pub kind: String,
    /// Which pools to allocate from, one CIDR per family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv4_pools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_pools: Vec<String>,
    /// `"true"` or `"false"`: the plugin reads these as strings.
    pub assign_ipv4: String,
    pub assign_ipv6: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesAccess {
    pub kubeconfig: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortmapPlugin {
    pub snat: bool,
    pub capabilities: Capabilities,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub port_mappings: bool,
}

/// What the conflist needs from the rest of the render.
#[derive(Debug, Clone)]
pub struct ConfListInputs<'a> {
    pub mtu: u32,
    /// Where the node's `calico-cni` kubeconfig lives (material dir + its install name).
    pub kubeconfig: &'a Path,
    pub ipv4_pool: Option<String>,
    pub ipv6_pool: Option<String>,
}

/// The conflist for every node: Calico with Calico IPAM and Kubernetes policy, then portmap.
pub fn conflist(inputs: &ConfListInputs<'_>) -> ConfList {
    ConfList {
        name: NETWORK_NAME.into(),
        cni_version: CNI_VERSION.into(),
        plugins: vec![
            Plugin::Calico(Box::new(CalicoPlugin {
                log_level: "info".into(),
                datastore_type: "kubernetes".into(),
                mtu: inputs.mtu,
                ipam: Ipam {
                    kind: "calico-ipam".into(),
                    ipv4_pools: inputs.ipv4_pool.iter().cloned().collect(),
                    ipv6_pools: inputs.ipv6_pool.iter().cloned().collect(),
                    assign_ipv4: inputs.ipv4_pool.is_some().to_string(),
                    assign_ipv6: inputs.ipv6_pool.is_some().to_string(),
                },
                policy: Policy { kind: "k8s".into() },
                kubernetes: KubernetesAccess {
                    kubeconfig: inputs.kubeconfig.display().to_string(),
                },
            })),
            Plugin::Portmap(PortmapPlugin {
                snat: true,
                capabilities: Capabilities {
                    port_mappings: true,
                },
            }),
        ],
    }
}

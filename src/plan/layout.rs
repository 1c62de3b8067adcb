//! Where things live: bundle paths, install names on a node, and the units that read them.
//!
//! The unit names and service users are the ones nixpkgs' `services.kubernetes`
//! and `services.etcd` create: the API server, controller-manager and
//! scheduler run as `kubernetes`, etcd as `etcd`, kubelet and kube-proxy as root.

use serde::{Deserialize, Serialize};

use super::{Authority, Profile};

/// A systemd unit that reads kubepki material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Unit {
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Etcd,
    Kubelet,
    KubeProxy,
}

impl Unit {
    pub fn service(self) -> &'static str {
        match self {
            Unit::KubeApiserver => "kube-apiserver.service",
            Unit::KubeControllerManager => "kube-controller-manager.service",
            Unit::KubeScheduler => "kube-scheduler.service",
            Unit::Etcd => "etcd.service",
            Unit::Kubelet => "kubelet.service",
            Unit::KubeProxy => "kube-proxy.service",
        }
    }

    /// The user the unit runs as, which must be able to read its key.
    pub fn user(self) -> &'static str {
        match self {
            Unit::KubeApiserver | Unit::KubeControllerManager | Unit::KubeScheduler => "kubernetes",
            Unit::Etcd => "etcd",
            Unit::Kubelet | Unit::KubeProxy => "root",
        }
    }
}

/// The units that read a leaf's certificate and key on its node.
pub fn units_of(profile: Profile) -> &'static [Unit] {
    match profile {
        Profile::ApiServer
        | Profile::ApiServerKubeletClient
        | Profile::ApiServerEtcdClient
        | Profile::FrontProxyClient => &[Unit::KubeApiserver],
        Profile::ControllerManager => &[Unit::KubeControllerManager],
        Profile::Scheduler => &[Unit::KubeScheduler],
        Profile::EtcdServer | Profile::EtcdPeer => &[Unit::Etcd],
        Profile::KubeletClient | Profile::KubeletServing => &[Unit::Kubelet],
        Profile::KubeProxy => &[Unit::KubeProxy],
        // Read per pod by the CNI binary, by health checks, or by operators: nothing to restart.
        Profile::EtcdHealthcheckClient
        | Profile::CalicoCni
        | Profile::Admin
        | Profile::SuperAdmin => &[],
    }
}

/// Owner of a leaf's key on its node: the user of the unit that reads it.
pub fn owner_of(profile: Profile) -> &'static str {
    match profile {
        Profile::EtcdHealthcheckClient => "etcd",
        _ => units_of(profile).first().map_or("root", |u| u.user()),
    }
}

/// The file name of a material on the node.
pub fn install_name(material: &str, suffix: &str) -> String {
    format!("{material}.{suffix}")
}

/// Install name of an authority's trust bundle; `ca.crt` for Kubernetes as kubeadm does.
pub fn trust_bundle_name(authority: Authority) -> String {
    match authority {
        Authority::Kubernetes => "ca.crt".into(),
        other => format!("{}-ca.crt", other.name()),
    }
}

/// Install name of an authority's key (only the Kubernetes CA key is ever installed).
pub fn authority_key_name(authority: Authority) -> String {
    match authority {
        Authority::Kubernetes => "ca.key".into(),
        other => format!("{}-ca.key", other.name()),
    }
}

pub fn authority_cert_file(authority: Authority) -> String {
    format!("ca/{}.crt", authority.name())
}

pub fn authority_key_file(authority: Authority) -> String {
    format!("ca/{}.key.age", authority.name())
}

/// Bundle folder of a node's own material.
pub fn node_dir(node: &str) -> String {
    format!("nodes/{node}")
}

/// Bundle folder of cluster-wide material.
pub const CLUSTER_DIR: &str = "cluster";

pub const CERT_MODE: u32 = 0o444;
pub const KEY_MODE: u32 = 0o400;

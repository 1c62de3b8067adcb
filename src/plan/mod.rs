//! The certificate plan: every CA, certificate, secret and kubeconfig the cluster needs, as pure data.
//!
//! `plan(&inventory)` does no I/O and no cryptography. It decides subjects,
//! SANs, key usages, issuers, which nodes receive which key, where each file
//! lives in the bundle, and where, with which owner, mode and units, it is
//! installed on a node. Issuance, sealing, the bundle writer, activation and
//! the NixOS modules all follow this one description, so a path or an owner
//! is decided exactly once.

mod build;
mod layout;
mod render;

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::inventory::{KeyAlgorithm, Role};

pub use build::plan;
pub use layout::{Unit, install_name};
pub use render::render_text;

/// One of the cluster's trust roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Authority {
    Kubernetes,
    Etcd,
    FrontProxy,
}

impl Authority {
    pub const ALL: [Authority; 3] = [
        Authority::Kubernetes,
        Authority::Etcd,
        Authority::FrontProxy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Authority::Kubernetes => "kubernetes",
            Authority::Etcd => "etcd",
            Authority::FrontProxy => "front-proxy",
        }
    }

    /// The CA certificate's common name, as kubeadm names them.
    pub fn common_name(self) -> &'static str {
        match self {
            Authority::Kubernetes => "kubernetes",
            Authority::Etcd => "etcd-ca",
            Authority::FrontProxy => "front-proxy-ca",
        }
    }

    pub fn from_name(name: &str) -> Option<Authority> {
        Authority::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Extended key usage of a leaf certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Usage {
    ServerAuth,
    ClientAuth,
}

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum San {
    Dns(String),
    Ip(IpAddr),
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(name) => write!(f, "DNS:{name}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// What a leaf certificate is for; decides its subject, usages and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    ApiServer,
    ApiServerKubeletClient,
    ApiServerEtcdClient,
    FrontProxyClient,
    ControllerManager,
    Scheduler,
    EtcdServer,
    EtcdPeer,
    EtcdHealthcheckClient,
    KubeletClient,
    KubeletServing,
    KubeProxy,
    CalicoCni,
    Admin,
    SuperAdmin,
}

impl Profile {
    /// The material name: file stem in the bundle and on the node.
    pub fn name(self) -> &'static str {
        match self {
            Profile::ApiServer => "apiserver",
            Profile::ApiServerKubeletClient => "apiserver-kubelet-client",
            Profile::ApiServerEtcdClient => "apiserver-etcd-client",
            Profile::FrontProxyClient => "front-proxy-client",
            Profile::ControllerManager => "controller-manager",
            Profile::Scheduler => "scheduler",
            Profile::EtcdServer => "etcd-server",
            Profile::EtcdPeer => "etcd-peer",
            Profile::EtcdHealthcheckClient => "etcd-healthcheck-client",
            Profile::KubeletClient => "kubelet-client",
            Profile::KubeletServing => "kubelet-serving",
            Profile::KubeProxy => "kube-proxy",
            Profile::CalicoCni => "calico-cni",
            Profile::Admin => "admin",
            Profile::SuperAdmin => "super-admin",
        }
    }
}

/// A CA: its certificate, its sealed key, and the nodes besides the operators that get the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorityPlan {
    pub authority: Authority,
    pub common_name: String,
    /// Bundle path of the trust bundle (signing CA first, then any CA being rotated out).
    pub cert_file: String,
    pub key_file: String,
    pub key_holders: Vec<String>,
}

/// One leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificatePlan {
    /// Stable identity, also the bundle path without extension: `nodes/<node>/apiserver`, `cluster/admin`.
    pub id: String,
    pub profile: Profile,
    pub common_name: String,
    pub organizations: Vec<String>,
    pub usages: Vec<Usage>,
    pub sans: Vec<San>,
    pub issuer: Authority,
    /// The node this certificate belongs to, if any (`None` for cluster-wide identities).
    pub node: Option<String>,
    /// Nodes that receive the private key; operators always do.
    pub key_holders: Vec<String>,
    pub cert_file: String,
    pub key_file: String,
}

/// A non-x509 secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    /// The service-account signing key pair (PEM private key, PEM "PUBLIC KEY").
    ServiceAccount,
    /// The API server's EncryptionConfiguration with a 32-byte secretbox key.
    EncryptionConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretPlan {
    pub id: String,
    pub kind: SecretKind,
    pub key_file: String,
    /// Bundle path of the public half, for key pairs.
    pub public_file: Option<String>,
    pub key_holders: Vec<String>,
}

/// What a file on a node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// A leaf certificate (PEM).
    Certificate,
    /// A CA trust bundle (PEM, one or more certificates).
    TrustBundle,
    /// A private key or secret config, sealed in the bundle.
    Secret,
    /// A public key (PEM).
    PublicKey,
}

/// One file installed on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallFile {
    /// Logical material: `apiserver`, `kubernetes-ca`, `service-account`, ...
    pub material: String,
    pub part: Part,
    /// Path in the bundle (encrypted for secrets).
    pub source: String,
    /// File name in the node's generation directory.
    pub install: String,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    /// systemd units that read it and must restart when it changes.
    pub units: Vec<String>,
}

/// A kubeconfig rendered on the node, pointing at installed files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeconfigPlan {
    /// `kubelet`, `kube-proxy`, `calico-cni`, `controller-manager`, `scheduler`, `admin`, `super-admin`.
    pub name: String,
    pub install: String,
    pub user: String,
    pub server: String,
    /// Install names of the trust bundle, certificate and key it references.
    pub ca: String,
    pub cert: String,
    pub key: String,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    pub units: Vec<String>,
}

/// Everything one node receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    pub name: String,
    pub roles: Vec<Role>,
    pub files: Vec<InstallFile>,
    pub kubeconfigs: Vec<KubeconfigPlan>,
}

/// The whole cluster PKI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub cluster: String,
    pub algorithm: KeyAlgorithm,
    pub ca_validity_days: u32,
    pub leaf_validity_days: u32,
    pub authorities: Vec<AuthorityPlan>,
    pub certificates: Vec<CertificatePlan>,
    pub secrets: Vec<SecretPlan>,
    pub nodes: Vec<NodePlan>,
}

impl Plan {
    pub fn authority(&self, authority: Authority) -> Option<&AuthorityPlan> {
        self.authorities.iter().find(|a| a.authority == authority)
    }

    pub fn certificate(&self, id: &str) -> Option<&CertificatePlan> {
        self.certificates.iter().find(|c| c.id == id)
    }

    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// How many private keys get sealed (CA keys, leaf keys, secrets).
    pub fn sealed_key_count(&self) -> usize {
        self.authorities.len() + self.certificates.len() + self.secrets.len()
    }
}

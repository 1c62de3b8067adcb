//! The cluster inventory: `hosts/cluster.toml`, typed and validated.
//!
//! This is the one place kubepki learns anything about the cluster. Loading
//! reads the file and the host keys it names, then validates the whole thing
//! before any other stage runs, so a bad inventory never leaves half a bundle
//! behind. Every error points at the file, line and column of the offending
//! field and says how to fix it (see [`error`]).
//!
//! The schema is also read by the NixOS modules with `builtins.fromTOML`, so
//! field names are snake_case TOML, and nothing here is derived state: derived
//! values (the pod MTU, the apiserver SANs) are computed by the stages that
//! need them, never stored.

pub mod edit;
mod error;
mod locate;
mod recipient;
mod validate;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use error::{InventoryError, InventoryErrors, Problem};
pub use recipient::{HostKey, Recipient, RecipientKind};

use crate::plan::Authority;

/// A loaded, validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The file it was read from; relative paths inside it are relative to its folder.
    pub path: PathBuf,
    pub spec: Spec,
    /// Each node's SSH host key, by node name, read from the file its `host_key` names.
    pub host_keys: BTreeMap<String, HostKey>,
    /// Each operator's recipients, parsed, by operator name.
    pub operator_recipients: BTreeMap<String, Vec<Recipient>>,
}

/// What `cluster.toml` says, field for field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub cluster: Cluster,
    pub api: Api,
    pub network: Network,
    #[serde(default)]
    pub pki: Pki,
    #[serde(default)]
    pub etcd: Etcd,
    #[serde(default)]
    pub calico: Calico,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    #[serde(default)]
    pub operators: Vec<Operator>,
    #[serde(default)]
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    #[serde(default = "default_domain")]
    pub domain: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Api {
    #[serde(default = "default_api_port")]
    pub port: u16,
    /// Host names or addresses clients dial; the first is the one kubeconfigs use.
    #[serde(default)]
    pub endpoints: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub service_cidrs: Vec<IpNet>,
    pub pod_cidrs: Vec<IpNet>,
    #[serde(default)]
    pub lan_cidrs: Vec<IpNet>,
    #[serde(default)]
    pub vpc_cidrs: Vec<IpNet>,
    #[serde(default = "default_tailnet_cidr")]
    pub tailnet_cidr: IpNet,
    #[serde(default)]
    pub mtu: Mtu,
}

/// The MTU of each kind of link pod traffic can cross.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Mtu {
    #[serde(default = "default_lan_mtu")]
    pub lan: u32,
    #[serde(default = "default_vpc_mtu")]
    pub vpc: u32,
    #[serde(default = "default_tailnet_mtu")]
    pub tailnet: u32,
}

impl Default for Mtu {
    fn default() -> Self {
        Mtu {
            lan: default_lan_mtu(),
            vpc: default_vpc_mtu(),
            tailnet: default_tailnet_mtu(),
        }
    }
}

/// Key algorithm for every key kubepki generates.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
pub enum KeyAlgorithm {
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl KeyAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        )
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pki {
    #[serde(default)]
    pub algorithm: KeyAlgorithm,
    #[serde(default = "default_ca_validity_days")]
    pub ca_validity_days: u32,
    #[serde(default = "default_leaf_validity_days")]
    pub leaf_validity_days: u32,
    #[serde(default = "default_renew_before_days")]
    pub renew_before_days: u32,
    #[serde(default = "default_true")]
    pub controller_manager_signs_csrs: bool,
    /// Folder of the sealed bundle, relative to the inventory file.
    #[serde(default = "default_bundle")]
    pub bundle: PathBuf,
    /// SHA-256 fingerprints of the CA certificates nodes accept, written by
    /// `kubepki recreate`; during a CA rotation an authority has two.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pins: BTreeMap<Authority, Vec<String>>,
}

impl Default for Pki {
    fn default() -> Self {
        Pki {
            algorithm: KeyAlgorithm::default(),
            ca_validity_days: default_ca_validity_days(),
            leaf_validity_days: default_leaf_validity_days(),
            renew_before_days: default_renew_before_days(),
            controller_manager_signs_csrs: true,
            bundle: default_bundle(),
            pins: BTreeMap::new(),
        }
    }
}

/// An etcd outside the inventory's nodes, instead of (or besides) stacked members.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Etcd {
    /// Client URLs of an external etcd that trusts this cluster's etcd CA.
    #[serde(default)]
    pub external_servers: Vec<String>,
}

/// Calico settings; see `crate::calico` for what each means on the wire.
///
/// The pod MTU is deliberately not here: it is derived from `network.mtu` and
/// the encapsulation below (`crate::calico::mtu`), so it is never typed twice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Calico {
    #[serde(default = "default_calico_version")]
    pub version: String,
    /// SHA-256 (hex) of the release's `manifests/crds.yaml`, which the NixOS
    /// module fetches and applies; `None` leaves the CRDs to you.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crds_sha256: Option<String>,
    /// `vxlan` (no BIRD), `bird` (BGP, needed for IP-in-IP) or `none`.
    #[serde(default)]
    pub backend: CalicoBackend,
    /// VXLAN encapsulation of the IP pools: `Always`, `CrossSubnet` or `Never`.
    #[serde(default = "default_cross_subnet")]
    pub vxlan_mode: EncapsulationMode,
    /// IP-in-IP encapsulation of the IPv4 pool: `Always`, `CrossSubnet` or `Never`.
    #[serde(default = "default_never")]
    pub ipip_mode: EncapsulationMode,
    /// Calico's own WireGuard; off, since Tailscale already encrypts.
    #[serde(default)]
    pub wireguard: bool,
    /// calico-node's `IP_AUTODETECTION_METHOD` (also used for IPv6 when dual-stack).
    #[serde(default = "default_ip_autodetection")]
    pub ip_autodetection: String,
    /// Felix's packet-mark bits, hex; must stay clear of Tailscale's 0xff0000.
    #[serde(default = "default_mark_mask")]
    pub iptables_mark_mask: String,
    /// Prefix length of the IPv4 blocks Calico IPAM hands to each node.
    #[serde(default = "default_block_size")]
    pub block_size: u8,
    #[serde(default = "default_true")]
    pub nat_outgoing: bool,
    /// Felix's dataplane: `iptables` or `nftables` (which crash-loops beside Tailscale before 3.33).
    #[serde(default)]
    pub dataplane: CalicoDataplane,
    /// Which iptables Felix drives: `Auto`, `Legacy` or `NFT`.
    #[serde(default)]
    pub iptables_backend: IptablesBackend,
    #[serde(default = "default_calico_node_image")]
    pub node_image: String,
    #[serde(default = "default_calico_kube_controllers_image")]
    pub kube_controllers_image: String,
}

impl Default for Calico {
    fn default() -> Self {
        Calico {
            version: default_calico_version(),
            crds_sha256: None,
            backend: CalicoBackend::default(),
            vxlan_mode: default_cross_subnet(),
            ipip_mode: default_never(),
            wireguard: false,
            ip_autodetection: default_ip_autodetection(),
            iptables_mark_mask: default_mark_mask(),
            block_size: default_block_size(),
            nat_outgoing: true,
            dataplane: CalicoDataplane::default(),
            iptables_backend: IptablesBackend::default(),
            node_image: default_calico_node_image(),
            kube_controllers_image: default_calico_kube_controllers_image(),
        }
    }
}

/// calico-node's networking backend (`CALICO_NETWORKING_BACKEND`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CalicoBackend {
    /// Routes from Felix, VXLAN only; no BGP daemon.
    #[default]
    Vxlan,
    /// BIRD speaks BGP; required for IP-in-IP and unencapsulated routing.
    Bird,
    /// Policy only; another plugin does the networking.
    None,
}

impl CalicoBackend {
    pub fn name(self) -> &'static str {
        match self {
            CalicoBackend::Vxlan => "vxlan",
            CalicoBackend::Bird => "bird",
            CalicoBackend::None => "none",
        }
    }
}

/// When an IP pool encapsulates traffic between nodes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum EncapsulationMode {
    Always,
    /// Only towards nodes outside the sender's subnet.
    CrossSubnet,
    Never,
}

impl EncapsulationMode {
    pub fn name(self) -> &'static str {
        match self {
            EncapsulationMode::Always => "Always",
            EncapsulationMode::CrossSubnet => "CrossSubnet",
            EncapsulationMode::Never => "Never",
        }
    }

    pub fn is_on(self) -> bool {
        self != EncapsulationMode::Never
    }
}

/// Felix's dataplane.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CalicoDataplane {
    #[default]
    Iptables,
    Nftables,
}

/// `iptablesBackend` of Felix's iptables dataplane.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum IptablesBackend {
    #[default]
    Auto,
    Legacy,
    #[serde(rename = "NFT")]
    Nft,
}

impl IptablesBackend {
    pub fn name(self) -> &'static str {
        match self {
            IptablesBackend::Auto => "Auto",
            IptablesBackend::Legacy => "Legacy",
            IptablesBackend::Nft => "NFT",
        }
    }
}

/// The signed Nix binary cache the hosts substitute from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Substituter URL, e.g. `s3://bucket?region=ap-northeast-2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Key name, e.g. `ducksnest-cache-1`; bump the number to revoke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// `name:base64(public key)`, written by `kubepki cache-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Recipients the secret key is sealed to besides the operators (CI).
    #[serde(default)]
    pub ci_recipients: Vec<String>,
    /// Where `kubepki cache-key` writes the sealed secret key, relative to this
    /// file; `cache/signing-key.age` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    pub name: String,
    /// `age1…` keys or `ssh-ed25519` / `ssh-rsa` public keys.
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Etcd,
    Worker,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Etcd => "etcd",
            Role::Worker => "worker",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub roles: Vec<Role>,
    /// The node's SSH host public key file, relative to the inventory.
    pub host_key: PathBuf,
    /// The address kubelet registers (`--node-ip`) and Calico encapsulates from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ip: Option<IpAddr>,
    /// DNS names the node answers to (tailnet MagicDNS, public DNS).
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub addresses: Addresses,
}

impl Node {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_control_plane(&self) -> bool {
        self.has_role(Role::ControlPlane)
    }

    pub fn is_etcd(&self) -> bool {
        self.has_role(Role::Etcd)
    }

    /// The address kubelet registers: `node_ip`, else the first LAN, VPC or tailnet address.
    pub fn primary_ip(&self) -> Option<IpAddr> {
        self.node_ip.or_else(|| {
            self.addresses
                .lan
                .iter()
                .chain(&self.addresses.vpc)
                .chain(&self.addresses.tailnet)
                .next()
                .copied()
        })
    }
}

/// A node's addresses by the kind of network they sit on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Addresses {
    #[serde(default)]
    pub lan: Vec<IpAddr>,
    #[serde(default)]
    pub vpc: Vec<IpAddr>,
    #[serde(default)]
    pub tailnet: Vec<IpAddr>,
    #[serde(default)]
    pub public: Vec<IpAddr>,
}

impl Addresses {
    /// Every address, LAN first, without duplicates, in a stable order.
    pub fn all(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for ip in self
            .lan
            .iter()
            .chain(&self.vpc)
            .chain(&self.tailnet)
            .chain(&self.public)
        {
            if !out.contains(ip) {
                out.push(*ip);
            }
        }
        out
    }
}

impl Inventory {
    /// Reads and validates the inventory and the host keys it names.
    pub fn load(path: &Path) -> Result<Inventory, InventoryErrors> {
        let source = std::fs::read_to_string(path).map_err(|source| {
            InventoryErrors::single(InventoryError::unlocated(
                path,
                Problem::Unreadable {
                    path: path.to_path_buf(),
                    reason: source.to_string(),
                },
            ))
        })?;
        Self::from_source(path, &source)
    }

    /// Parses and validates `source` as if read from `path` (host keys are still read from disk).
    pub fn from_source(path: &Path, source: &str) -> Result<Inventory, InventoryErrors> {
        let spec: Spec = toml::from_str(source)
            .map_err(|e| InventoryErrors::single(InventoryError::from_toml(path, source, &e)))?;
        let checked = validate::validate(path, &spec);
        if !checked.problems.is_empty() {
            let errors = checked
                .problems
                .into_iter()
                .map(|(field, problem)| InventoryError::at_field(path, source, &field, problem))
                .collect();
            return Err(InventoryErrors(errors));
        }
        Ok(Inventory {
            path: path.to_path_buf(),
            spec,
            host_keys: checked.host_keys,
            operator_recipients: checked.operator_recipients,
        })
    }

    /// The folder relative paths in the inventory are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Where the sealed bundle lives.
    pub fn bundle_dir(&self) -> PathBuf {
        self.base_dir().join(&self.spec.pki.bundle)
    }

    pub fn nodes(&self) -> &[Node] {
        &self.spec.nodes
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.spec.nodes.iter().find(|n| n.name == name)
    }

    pub fn control_planes(&self) -> impl Iterator<Item = &Node> {
        self.spec.nodes.iter().filter(|n| n.is_control_plane())
    }

    pub fn etcd_members(&self) -> impl Iterator<Item = &Node> {
        self.spec.nodes.iter().filter(|n| n.is_etcd())
    }

    /// Every operator recipient, in inventory order.
    pub fn all_operator_recipients(&self) -> impl Iterator<Item = &Recipient> {
        self.spec
            .operators
            .iter()
            .filter_map(|o| self.operator_recipients.get(&o.name))
            .flatten()
    }

    /// The URL kubeconfigs dial: the first API endpoint, else the first control plane's node IP.
    pub fn api_server_url(&self) -> String {
        let host = self.spec.api.endpoints.first().cloned().or_else(|| {
            self.control_planes()
                .next()
                .and_then(|n| n.primary_ip())
                .map(|ip| ip.to_string())
        });
        let host = host.unwrap_or_else(|| "127.0.0.1".to_string());
        let host = match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => host,
        };
        format!("https://{host}:{}", self.spec.api.port)
    }
}

fn default_domain() -> String {
    "cluster.local".into()
}
fn default_api_port() -> u16 {
    6443
}
fn default_tailnet_cidr() -> IpNet {
    IpNet::V4(ipnet::Ipv4Net::new_assert(
        std::net::Ipv4Addr::new(100, 64, 0, 0),
        10,
    ))
}
fn default_lan_mtu() -> u32 {
    1500
}
fn default_vpc_mtu() -> u32 {
    9001
}
fn default_tailnet_mtu() -> u32 {
    1280
}
fn default_ca_validity_days() -> u32 {
    3650
}
fn default_leaf_validity_days() -> u32 {
    365
}
fn default_renew_before_days() -> u32 {
    30
}
fn default_true() -> bool {
    true
}
fn default_bundle() -> PathBuf {
    PathBuf::from("pki")
}
fn default_calico_version() -> String {
    "3.30.3".into()
}
fn default_cross_subnet() -> EncapsulationMode {
    EncapsulationMode::CrossSubnet
}
fn default_never() -> EncapsulationMode {
    EncapsulationMode::Never
}
fn default_ip_autodetection() -> String {
    "kubernetes-internal-ip".into()
}
fn default_mark_mask() -> String {
    "0xff000000".into()
}
fn default_block_size() -> u8 {
    26
}
fn default_calico_node_image() -> String {
    format!("quay.io/calico/node:v{}", default_calico_version())
}
fn default_calico_kube_controllers_image() -> String {
    format!(
        "quay.io/calico/kube-controllers:v{}",
        default_calico_version()
    )
}

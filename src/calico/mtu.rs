//! The pod MTU, derived from the inventory instead of typed by hand.
//!
//! Pod packets can cross every kind of link the nodes sit on: the home LAN,
//! the cloud VPC and the tailnet (nodes with an address of that kind in
//! `[nodes.addresses]`). One MTU serves the whole cluster, so it is the
//! smallest of those links' MTUs (`network.mtu`) minus the largest overhead of
//! the encapsulations the inventory turns on: IP-in-IP 20, VXLAN 50 over IPv4
//! and 70 over IPv6, WireGuard 60 and 80 (Felix's own constants). The result
//! carries its derivation, so `kubepki calico --explain` and the lint can say
//! which link and which overhead decided it.
//!
//! This module does not look at interfaces or probe paths: what the links
//! really allow is the inventory's claim, and the lint checks that claim
//! against what Tailscale is known to do.

use std::fmt;

use ipnet::IpNet;
use serde::Serialize;

use crate::inventory::{Inventory, Spec};

/// The smallest MTU IPv6 allows on any link (RFC 8200); the kernel disables IPv6 below it.
pub const IPV6_MINIMUM_MTU: u32 = 1280;

/// An IP family of pod traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }
}

/// A kind of link between nodes, as `network.mtu` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    Lan,
    Vpc,
    Tailnet,
}

impl LinkKind {
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::Lan => "lan",
            LinkKind::Vpc => "vpc",
            LinkKind::Tailnet => "tailnet",
        }
    }
}

/// How pod packets are wrapped between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encapsulation {
    None,
    IpInIp,
    Vxlan,
    WireGuard,
}

impl Encapsulation {
    /// Bytes the encapsulation adds to every packet, as Felix counts them.
    pub fn overhead(self, family: Family) -> u32 {
        match (self, family) {
            (Encapsulation::None, _) => 0,
            // Calico has no IP-in-IP for IPv6 pools; the IPv4 figure is all there is.
            (Encapsulation::IpInIp, _) => 20,
            (Encapsulation::Vxlan, Family::Ipv4) => 50,
            (Encapsulation::Vxlan, Family::Ipv6) => 70,
            (Encapsulation::WireGuard, Family::Ipv4) => 60,
            (Encapsulation::WireGuard, Family::Ipv6) => 80,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encapsulation::None => "no encapsulation",
            Encapsulation::IpInIp => "IP-in-IP",
            Encapsulation::Vxlan => "VXLAN",
            Encapsulation::WireGuard => "WireGuard",
        }
    }
}

/// One kind of link pod traffic can take, and its MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Link {
    pub kind: LinkKind,
    pub mtu: u32,
}

/// The pod MTU of one family and how it came about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MtuDerivation {
    pub family: Family,
    /// The links pod traffic can take (kinds some node has an address on).
    pub links: Vec<Link>,
    /// The smallest of them: it limits the MTU.
    pub limiting: Link,
    /// Encapsulations in effect for this family (empty: none).
    pub encapsulations: Vec<Encapsulation>,
    /// IPv6 encapsulations the inventory asks for but the link cannot carry
    /// (they would leave less than [`IPV6_MINIMUM_MTU`]); that traffic goes unencapsulated.
    pub infeasible: Vec<Encapsulation>,
    /// The one with the largest overhead, which decides the pod MTU.
    pub encapsulation: Encapsulation,
    pub overhead: u32,
    /// `limiting.mtu - overhead`: veth, tunnel devices and the CNI conflist all get this.
    pub pod_mtu: u32,
}

impl MtuDerivation {
    /// The MTU of one encapsulation's tunnel device (e.g. `vxlan.calico`) on the limiting link.
    pub fn tunnel_mtu(&self, encapsulation: Encapsulation) -> u32 {
        self.limiting
            .mtu
            .saturating_sub(encapsulation.overhead(self.family))
    }
}

impl fmt::Display for MtuDerivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let links: Vec<String> = self
            .links
            .iter()
            .map(|l| format!("{} {}", l.kind.name(), l.mtu))
            .collect();
        write!(
            f,
            "{} pod MTU {} = {} link MTU {} (smallest of: {}) - {} overhead {}",
            self.family.name(),
            self.pod_mtu,
            self.limiting.kind.name(),
            self.limiting.mtu,
            links.join(", "),
            self.encapsulation.name(),
            self.overhead,
        )?;
        if self.encapsulations.len() > 1 {
            let all: Vec<&str> = self.encapsulations.iter().map(|e| e.name()).collect();
            write!(f, " (largest of the enabled {})", all.join(", "))?;
        }
        for e in &self.infeasible {
            write!(
                f,
                "; {} is left out: {} - {} = {} is below IPv6's minimum of {IPV6_MINIMUM_MTU}",
                e.name(),
                self.limiting.mtu,
                e.overhead(self.family),
                self.tunnel_mtu(*e)
            )?;
        }
        Ok(())
    }
}

/// The links pod traffic can take: each kind some node has an address of.
///
/// A cluster whose nodes only list public addresses crosses the internet,
/// which is taken to carry what a LAN does (`network.mtu.lan`).
pub fn links(spec: &Spec) -> Vec<Link> {
    let mtu = &spec.network.mtu;
    let candidates = [
        (
            LinkKind::Lan,
            mtu.lan,
            spec.nodes.iter().any(|n| !n.addresses.lan.is_empty()),
        ),
        (
            LinkKind::Vpc,
            mtu.vpc,
            spec.nodes.iter().any(|n| !n.addresses.vpc.is_empty()),
        ),
        (
            LinkKind::Tailnet,
            mtu.tailnet,
            spec.nodes.iter().any(|n| !n.addresses.tailnet.is_empty()),
        ),
    ];
    let present: Vec<Link> = candidates
        .iter()
        .filter(|(_, _, used)| *used)
        .map(|&(kind, mtu, _)| Link { kind, mtu })
        .collect();
    if present.is_empty() {
        vec![Link {
            kind: LinkKind::Lan,
            mtu: mtu.lan,
        }]
    } else {
        present
    }
}

/// The encapsulations the inventory asks for, for `family` (feasible or not).
pub fn requested_encapsulations(spec: &Spec, family: Family) -> Vec<Encapsulation> {
    let calico = &spec.calico;
    let mut out = Vec::new();
    if family == Family::Ipv4 && calico.ipip_mode.is_on() {
        out.push(Encapsulation::IpInIp);
    }
    if calico.vxlan_mode.is_on() {
        out.push(Encapsulation::Vxlan);
    }
    if calico.wireguard {
        out.push(Encapsulation::WireGuard);
    }
    out
}

/// Derives the pod MTU of `family` from the inventory's links and encapsulation.
///
/// An IPv6 encapsulation that would leave less than 1280 bytes is left out
/// (Calico cannot use it: the kernel disables IPv6 on such a device), so
/// over a 1280-byte tailnet IPv6 pod traffic is not encapsulated at all.
pub fn derive(spec: &Spec, family: Family) -> MtuDerivation {
    let links = links(spec);
    let limiting = links.iter().copied().min_by_key(|l| l.mtu).unwrap_or(Link {
        kind: LinkKind::Lan,
        mtu: spec.network.mtu.lan,
    });
    let fits = |e: &Encapsulation| {
        family == Family::Ipv4
            || limiting.mtu.saturating_sub(e.overhead(family)) >= IPV6_MINIMUM_MTU
    };
    let (encapsulations, infeasible): (Vec<_>, Vec<_>) = requested_encapsulations(spec, family)
        .into_iter()
        .partition(fits);
    let encapsulation = encapsulations
        .iter()
        .copied()
        .max_by_key(|e| e.overhead(family))
        .unwrap_or(Encapsulation::None);
    let overhead = encapsulation.overhead(family);
    MtuDerivation {
        family,
        links,
        limiting,
        encapsulations,
        infeasible,
        encapsulation,
        overhead,
        pod_mtu: limiting.mtu.saturating_sub(overhead),
    }
}

/// The IP families of the pod CIDRs, IPv4 first.
pub fn pod_families(spec: &Spec) -> Vec<Family> {
    let mut out = Vec::new();
    for (family, present) in [
        (
            Family::Ipv4,
            spec.network
                .pod_cidrs
                .iter()
                .any(|c| matches!(c, IpNet::V4(_))),
        ),
        (
            Family::Ipv6,
            spec.network
                .pod_cidrs
                .iter()
                .any(|c| matches!(c, IpNet::V6(_))),
        ),
    ] {
        if present {
            out.push(family);
        }
    }
    out
}

/// The one pod MTU of the cluster, as Felix picks it: the smallest over the
/// pod CIDRs' families. This is what veth, `veth_mtu` and the conflist get.
pub fn cluster_pod_mtu(spec: &Spec) -> u32 {
    pod_families(spec)
        .into_iter()
        .map(|family| derive(spec, family).pod_mtu)
        .min()
        .unwrap_or_else(|| derive(spec, Family::Ipv4).pod_mtu)
}

/// Whether IPv6 pod traffic can be VXLAN-encapsulated: VXLAN is on and leaves at least 1280 bytes.
pub fn ipv6_vxlan_possible(spec: &Spec) -> bool {
    derive(spec, Family::Ipv6)
        .encapsulations
        .contains(&Encapsulation::Vxlan)
}

/// The cluster's pod MTU (1230 for VXLAN over a 1280 tailnet): [`cluster_pod_mtu`].
pub fn pod_mtu(inventory: &Inventory) -> u32 {
    cluster_pod_mtu(&inventory.spec)
}

/// The IPv6 pod MTU (1280 over a 1280 tailnet, where IPv6 cannot be encapsulated; 1430 for VXLAN over 1500).
pub fn pod_mtu_v6(inventory: &Inventory) -> u32 {
    derive(&inventory.spec, Family::Ipv6).pod_mtu
}

//! The network lint: Calico-over-Tailscale traps found in the inventory before they bite.
//!
//! Each rule looks at the inventory alone and reports a [`Finding`]: what is
//! wrong, why it breaks the cluster, and how to fix it. Errors are settings
//! that cannot work (IP-in-IP without BIRD, a packet-mark mask that collides
//! with Tailscale's); warnings are settings that work badly or only by luck
//! (CrossSubnet that always encapsulates, an autodetection method that may
//! pick `tailscale0`). `kubepki lint` exits non-zero on errors only, and
//! `kubepki plan` can print the same findings.
//!
//! The lint does not touch a node or the cluster: what interfaces exist, which
//! MTU a path really has and what Calico has applied are outside its view.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use regex::Regex;
use serde::Serialize;

use super::mtu::{self, Family, IPV6_MINIMUM_MTU};
use crate::inventory::{CalicoBackend, CalicoDataplane, EncapsulationMode, Inventory, Node, Spec};

/// Tailscale's packet-mark bits (`fwmark` 0x40000 / 0x80000 and friends live in this byte).
pub const TAILSCALE_MARK_MASK: u32 = 0x00ff_0000;
/// kube-proxy's masquerade (0x4000) and drop (0x8000) marks.
pub const KUBE_PROXY_MARK_MASK: u32 = 0x0000_c000;
/// Tailscale's default `tailscale0` MTU.
pub const TAILSCALE_MTU: u32 = 1280;
/// The interface Tailscale creates on every node of the tailnet.
pub const TAILSCALE_INTERFACE: &str = "tailscale0";
/// The first Calico release whose nftables dataplane survives Tailscale's nft rules.
pub const NFTABLES_FIXED_IN: (u32, u32) = (3, 33);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Which check produced a finding; the name is stable, for scripts and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    TailnetMtuAboveTailscale,
    PodCidrOverlap,
    IpipAndVxlan,
    IpipWithoutBird,
    NoCrossNodeRoutes,
    CrossSubnetAlwaysEncapsulates,
    MarkMaskInvalid,
    MarkMaskCollision,
    AutodetectionInvalid,
    AutodetectionCanPickTailscale,
    NftablesWithTailscale,
    Ipv6VxlanOverTailnet,
    PodMtuBelowIpv6Minimum,
    WireguardOverTailscale,
    ImageVersionMismatch,
    CrdsNotPinned,
    BlockSizeInvalid,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::TailnetMtuAboveTailscale => "tailnet-mtu-above-tailscale",
            Rule::PodCidrOverlap => "pod-cidr-overlap",
            Rule::IpipAndVxlan => "ipip-and-vxlan",
            Rule::IpipWithoutBird => "ipip-without-bird",
            Rule::NoCrossNodeRoutes => "no-cross-node-routes",
            Rule::CrossSubnetAlwaysEncapsulates => "cross-subnet-always-encapsulates",
            Rule::MarkMaskInvalid => "mark-mask-invalid",
            Rule::MarkMaskCollision => "mark-mask-collision",
            Rule::AutodetectionInvalid => "autodetection-invalid",
            Rule::AutodetectionCanPickTailscale => "autodetection-can-pick-tailscale0",
            Rule::NftablesWithTailscale => "nftables-with-tailscale",
            Rule::Ipv6VxlanOverTailnet => "ipv6-vxlan-over-tailnet",
            Rule::PodMtuBelowIpv6Minimum => "pod-mtu-below-ipv6-minimum",
            Rule::WireguardOverTailscale => "wireguard-over-tailscale",
            Rule::ImageVersionMismatch => "image-version-mismatch",
            Rule::CrdsNotPinned => "crds-not-pinned",
            Rule::BlockSizeInvalid => "block-size-invalid",
        }
    }
}

/// One problem with the network settings: what, why it breaks, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub what: String,
    pub why: String,
    pub fix: String,
}

impl Finding {
    fn new(
        rule: Rule,
        severity: Severity,
        what: impl Into<String>,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            rule,
            severity,
            what: what.into(),
            why: why.into(),
            fix: fix.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}]: {}\n    why: {}\n    fix: {}",
            self.severity.name(),
            self.rule.name(),
            self.what,
            self.why,
            self.fix
        )
    }
}

/// Every finding for the inventory, errors first, in rule order.
pub fn lint(inventory: &Inventory) -> Vec<Finding> {
    lint_spec(&inventory.spec)
}

/// [`lint`] on the parsed inventory alone (no host keys needed).
pub fn lint_spec(spec: &Spec) -> Vec<Finding> {
    let mut findings = Vec::new();
    tailnet_mtu(spec, &mut findings);
    pod_cidr_overlaps(spec, &mut findings);
    block_size(spec, &mut findings);
    encapsulation(spec, &mut findings);
    cross_subnet(spec, &mut findings);
    mark_mask(spec, &mut findings);
    autodetection(spec, &mut findings);
    dataplane(spec, &mut findings);
    ipv6(spec, &mut findings);
    wireguard(spec, &mut findings);
    images(spec, &mut findings);
    crds(spec, &mut findings);
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

fn on_tailnet(spec: &Spec) -> bool {
    spec.nodes.iter().any(|n| !n.addresses.tailnet.is_empty())
}

fn is_tailnet_ip(spec: &Spec, ip: &IpAddr) -> bool {
    spec.network.tailnet_cidr.contains(ip) || tailscale_ranges().iter().any(|r| r.contains(ip))
}

/// Tailscale's fixed address ranges: 100.64.0.0/10 (CGNAT) and fd7a:115c:a1e0::/48.
fn tailscale_ranges() -> [IpNet; 2] {
    [
        IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10)),
        IpNet::V6(Ipv6Net::new_assert(
            Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0),
            48,
        )),
    ]
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn tailnet_mtu(spec: &Spec, out: &mut Vec<Finding>) {
    let mtu = spec.network.mtu.tailnet;
    if on_tailnet(spec) && mtu > TAILSCALE_MTU {
        let derived = mtu::derive(spec, Family::Ipv4);
        out.push(Finding::new(
            Rule::TailnetMtuAboveTailscale,
            Severity::Warning,
            format!(
                "`network.mtu.tailnet` is {mtu}, but `tailscale0` has an MTU of {TAILSCALE_MTU} unless Tailscale was told otherwise; the derived pod MTU is {}",
                derived.pod_mtu
            ),
            format!(
                "pods would send packets up to {} bytes into a {TAILSCALE_MTU}-byte tunnel: small requests work, large responses hang (a PMTU black hole), and Felix logs `Failed to set vxlan tunnel device MTU`",
                derived.pod_mtu
            ),
            format!(
                "set `network.mtu.tailnet = {TAILSCALE_MTU}` (what `ip link show tailscale0` prints), or keep {mtu} only if every node runs Tailscale with that MTU"
            ),
        ));
    }
}

fn pod_cidr_overlaps(spec: &Spec, out: &mut Vec<Finding>) {
    let net = &spec.network;
    let mut ranges: Vec<(String, IpNet)> = Vec::new();
    for c in &net.service_cidrs {
        ranges.push(("service CIDR".into(), *c));
    }
    for c in &net.lan_cidrs {
        ranges.push(("LAN".into(), *c));
    }
    for c in &net.vpc_cidrs {
        ranges.push(("VPC".into(), *c));
    }
    ranges.push(("tailnet (`network.tailnet_cidr`)".into(), net.tailnet_cidr));
    for r in tailscale_ranges() {
        if r != net.tailnet_cidr {
            ranges.push(("Tailscale's address range".into(), r));
        }
    }
    // Calico refuses pools in the link-local ranges.
    ranges.push((
        "the IPv4 link-local range".into(),
        IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16)),
    ));
    ranges.push((
        "the IPv6 link-local range".into(),
        IpNet::V6(Ipv6Net::new_assert(
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            10,
        )),
    ));
    for node in &spec.nodes {
        for ip in node.addresses.all() {
            ranges.push((format!("node `{}`'s address", node.name), IpNet::from(ip)));
        }
    }
    for pod in &net.pod_cidrs {
        for (what, other) in &ranges {
            if overlaps(pod, other) {
                out.push(Finding::new(
                    Rule::PodCidrOverlap,
                    Severity::Error,
                    format!("pod CIDR `{pod}` overlaps {what} `{other}`"),
                    "a node routes pod addresses to its pods, so packets meant for the other range are delivered to pods (or dropped) instead",
                    "choose a pod CIDR outside the service, LAN, VPC and tailnet ranges, e.g. 10.244.0.0/16 (192.168.0.0/16, Calico's fallback, often collides with home LANs)",
                ));
            }
        }
    }
}

/// Calico IPAM hands out IPv4 blocks of /20 to /32, never larger than the pool.
fn block_size(spec: &Spec, out: &mut Vec<Finding>) {
    let block = spec.calico.block_size;
    let v4 = spec
        .network
        .pod_cidrs
        .iter()
        .find(|c| matches!(c, IpNet::V4(_)));
    if !(20..=32).contains(&block) {
        out.push(Finding::new(
            Rule::BlockSizeInvalid,
            Severity::Error,
            format!("`calico.block_size` is /{block}; Calico IPAM takes IPv4 blocks of /20 to /32"),
            "Calico refuses the IP pool, so no pod gets an address",
            "use 26 (64 addresses per block), Calico's default",
        ));
    } else if let Some(pool) = v4.filter(|p| p.prefix_len() > block) {
        out.push(Finding::new(
            Rule::BlockSizeInvalid,
            Severity::Error,
            format!("`calico.block_size` /{block} is larger than the pod CIDR `{pool}`"),
            "Calico refuses a pool smaller than one block (\"IP pool size is too small for use with Calico IPAM\")",
            format!("use a block size of at least /{} (26 is usual), or a larger pod CIDR", pool.prefix_len()),
        ));
    }
}

fn encapsulation(spec: &Spec, out: &mut Vec<Finding>) {
    let calico = &spec.calico;
    let (ipip, vxlan) = (calico.ipip_mode, calico.vxlan_mode);
    if ipip.is_on() && vxlan.is_on() {
        out.push(Finding::new(
            Rule::IpipAndVxlan,
            Severity::Error,
            format!(
                "`calico.ipip_mode` is {} and `calico.vxlan_mode` is {}: both encapsulations are on",
                ipip.name(),
                vxlan.name()
            ),
            "Calico refuses an IP pool with both IP-in-IP and VXLAN enabled, so the pool is never created and no pod gets an address",
            "keep VXLAN (`vxlan_mode = \"CrossSubnet\"`) and set `ipip_mode = \"Never\"`",
        ));
    }
    if ipip.is_on() && calico.backend != CalicoBackend::Bird {
        let mtu = mtu::derive(spec, Family::Ipv4);
        out.push(Finding::new(
            Rule::IpipWithoutBird,
            Severity::Error,
            format!(
                "`calico.ipip_mode` is {} but `calico.backend` is {}: IP-in-IP needs BIRD",
                ipip.name(),
                calico.backend.name()
            ),
            format!(
                "IP-in-IP routes are distributed by BGP; without BIRD no node learns where other nodes' pods are, so cross-node pod traffic is dropped, and the tunnel MTU ({}, IP-in-IP overhead 20) no longer matches a VXLAN setup ({} for VXLAN)",
                mtu.tunnel_mtu(mtu::Encapsulation::IpInIp),
                mtu.tunnel_mtu(mtu::Encapsulation::Vxlan)
            ),
            "for VXLAN over Tailscale set `ipip_mode = \"Never\"` and `vxlan_mode = \"CrossSubnet\"`; for IP-in-IP set `backend = \"bird\"`",
        ));
    }
    if !ipip.is_on()
        && !vxlan.is_on()
        && calico.backend == CalicoBackend::Vxlan
        && spec.nodes.len() > 1
    {
        out.push(Finding::new(
            Rule::NoCrossNodeRoutes,
            Severity::Error,
            "`calico.backend` is vxlan but both `vxlan_mode` and `ipip_mode` are Never",
            "the vxlan backend has no BGP, so without VXLAN no node has a route to pods on another node",
            "set `vxlan_mode = \"CrossSubnet\"` (or `Always`)",
        ));
    }
}

/// The subnet Calico sees a node's address in: its LAN or VPC range, else a host route.
fn node_subnet(spec: &Spec, node: &Node) -> Option<IpNet> {
    let ip = node.primary_ip()?;
    let shared = spec
        .network
        .lan_cidrs
        .iter()
        .chain(&spec.network.vpc_cidrs)
        .find(|c| c.contains(&ip))
        .copied();
    Some(shared.unwrap_or_else(|| IpNet::from(ip)))
}

fn cross_subnet(spec: &Spec, out: &mut Vec<Finding>) {
    let calico = &spec.calico;
    let cross = [calico.vxlan_mode, calico.ipip_mode].contains(&EncapsulationMode::CrossSubnet);
    if !cross || spec.nodes.len() < 2 {
        return;
    }
    let subnets: Vec<IpNet> = spec
        .nodes
        .iter()
        .filter_map(|n| node_subnet(spec, n))
        .collect();
    let shared = subnets.iter().enumerate().any(|(i, a)| {
        a.prefix_len() < a.max_prefix_len() && subnets[i + 1..].iter().any(|b| b == a)
    });
    if !shared {
        out.push(Finding::new(
            Rule::CrossSubnetAlwaysEncapsulates,
            Severity::Warning,
            "CrossSubnet encapsulation is on, but no two nodes share a subnet: every node address is a /32 (tailnet) or alone in its range",
            "CrossSubnet only skips encapsulation between nodes in the same subnet, so here it behaves exactly like Always",
            "set each home node's `node_ip` to its LAN address (and list the LAN in `network.lan_cidrs`) so LAN traffic is routed natively, or write `Always` to say what happens",
        ));
    }
}

/// Parses `0x…` (hex) or decimal.
pub fn parse_mark_mask(text: &str) -> Option<u32> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

fn mark_mask(spec: &Spec, out: &mut Vec<Finding>) {
    let text = &spec.calico.iptables_mark_mask;
    let Some(mask) = parse_mark_mask(text).filter(|m| *m != 0) else {
        out.push(Finding::new(
            Rule::MarkMaskInvalid,
            Severity::Error,
            format!("`calico.iptables_mark_mask` `{text}` is not a non-zero 32-bit mask"),
            "Felix refuses to start without mark bits to allocate",
            "write it in hex, e.g. \"0xff000000\"",
        ));
        return;
    };
    for (owner, theirs, applies) in [
        ("Tailscale", TAILSCALE_MARK_MASK, on_tailnet(spec)),
        ("kube-proxy", KUBE_PROXY_MARK_MASK, true),
    ] {
        if applies && mask & theirs != 0 {
            out.push(Finding::new(
                Rule::MarkMaskCollision,
                Severity::Error,
                format!(
                    "`calico.iptables_mark_mask` {mask:#010x} overlaps {owner}'s packet marks {theirs:#010x}"
                ),
                format!(
                    "Felix and {owner} overwrite each other's marks, so packets are accepted, dropped or routed by the wrong rules (with Tailscale: traffic to the tailnet loops or bypasses the tunnel)"
                ),
                "use \"0xff000000\", which leaves Tailscale's 0x00ff0000 and kube-proxy's 0x0000c000 alone",
            ));
        }
    }
}

/// calico-node's `IP_AUTODETECTION_METHOD`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Autodetection {
    FirstFound,
    KubernetesInternalIp,
    CanReach(String),
    Interface(Vec<String>),
    SkipInterface(Vec<String>),
    Cidr(Vec<String>),
}

impl Autodetection {
    /// Parses the method as calico-node does; `None` for a method it would refuse.
    pub fn parse(text: &str) -> Option<Autodetection> {
        let list =
            |rest: &str| -> Vec<String> { rest.split(',').map(|s| s.trim().to_string()).collect() };
        let text = text.trim();
        if text.is_empty() || text == "first-found" {
            Some(Autodetection::FirstFound)
        } else if text == "kubernetes-internal-ip" {
            Some(Autodetection::KubernetesInternalIp)
        } else if let Some(rest) = text.strip_prefix("can-reach=") {
            Some(Autodetection::CanReach(rest.trim().to_string()))
        } else if let Some(rest) = text.strip_prefix("interface=") {
            Some(Autodetection::Interface(list(rest)))
        } else if let Some(rest) = text.strip_prefix("skip-interface=") {
            Some(Autodetection::SkipInterface(list(rest)))
        } else {
            text.strip_prefix("cidr=")
                .map(|rest| Autodetection::Cidr(list(rest)))
        }
    }
}

/// Go's `regexp` joins the list as `(a)|(b)` and matches unanchored; so does this.
fn joined_regex(patterns: &[String]) -> Result<Regex, regex::Error> {
    let joined = patterns
        .iter()
        .map(|p| format!("({p})"))
        .collect::<Vec<_>>()
        .join("|");
    Regex::new(&joined)
}

fn autodetection(spec: &Spec, out: &mut Vec<Finding>) {
    let text = &spec.calico.ip_autodetection;
    let invalid = |reason: String| {
        Finding::new(
            Rule::AutodetectionInvalid,
            Severity::Error,
            format!(
                "`calico.ip_autodetection` `{text}` is not a method calico-node accepts: {reason}"
            ),
            "calico-node cannot determine the node's address and exits, so no pod on that node gets a network",
            "use `kubernetes-internal-ip` (the `node_ip` of each node), or `interface=`, `skip-interface=`, `cidr=` or `can-reach=`",
        )
    };
    let Some(method) = Autodetection::parse(text) else {
        out.push(invalid("unknown method".into()));
        return;
    };
    // Nodes that have tailscale0 but should be addressed elsewhere (home nodes on their LAN).
    let exposed: Vec<&str> = spec
        .nodes
        .iter()
        .filter(|n| !n.addresses.tailnet.is_empty())
        .filter(|n| n.primary_ip().is_some_and(|ip| !is_tailnet_ip(spec, &ip)))
        .map(|n| n.name.as_str())
        .collect();
    let picks_tailscale = match &method {
        Autodetection::KubernetesInternalIp => None,
        Autodetection::FirstFound => Some(
            "first-found skips docker*, veth*, cali* and the like but not tailscale0, so the interface order decides".to_string(),
        ),
        Autodetection::CanReach(dest) => {
            let to_tailnet = dest
                .parse::<IpAddr>()
                .map(|ip| is_tailnet_ip(spec, &ip))
                .unwrap_or_else(|_| dest.ends_with(".ts.net"));
            to_tailnet.then(|| format!("`{dest}` is on the tailnet, so every node reaches it through tailscale0 and takes its tailnet address"))
        }
        Autodetection::Interface(patterns) => match joined_regex(patterns) {
            Err(e) => {
                out.push(invalid(format!("bad interface regex: {e}")));
                return;
            }
            Ok(re) => re
                .is_match(TAILSCALE_INTERFACE)
                .then(|| format!("the interface pattern `{}` matches `{TAILSCALE_INTERFACE}`", patterns.join(","))),
        },
        Autodetection::SkipInterface(patterns) => match joined_regex(patterns) {
            Err(e) => {
                out.push(invalid(format!("bad interface regex: {e}")));
                return;
            }
            Ok(re) => (!re.is_match(TAILSCALE_INTERFACE)).then(|| {
                format!("the skip pattern `{}` does not exclude `{TAILSCALE_INTERFACE}`", patterns.join(","))
            }),
        },
        Autodetection::Cidr(cidrs) => {
            let mut parsed = Vec::new();
            for c in cidrs {
                match c.parse::<IpNet>() {
                    Ok(net) => parsed.push(net),
                    Err(e) => {
                        out.push(invalid(format!("`{c}` is not a CIDR ({e})")));
                        return;
                    }
                }
            }
            let tailnet: Vec<IpNet> = std::iter::once(spec.network.tailnet_cidr)
                .chain(tailscale_ranges())
                .collect();
            parsed
                .iter()
                .find(|c| tailnet.iter().any(|t| overlaps(c, t)))
                .map(|c| format!("the CIDR `{c}` covers tailnet addresses"))
        }
    };
    if let Some(reason) = picks_tailscale
        && !exposed.is_empty()
    {
        out.push(Finding::new(
            Rule::AutodetectionCanPickTailscale,
            Severity::Warning,
            format!(
                "`calico.ip_autodetection` `{text}` can pick `{TAILSCALE_INTERFACE}` on {}: {reason}",
                exposed.join(", ")
            ),
            "a node that registers its tailnet /32 address loses native routing on its LAN: CrossSubnet then encapsulates everything, and VXLAN on port 4789 rides tailscale0 between nodes that share a LAN",
            "use `kubernetes-internal-ip` with each node's `node_ip` (LAN at home, tailnet on EC2), or `skip-interface=tailscale0`",
        ));
    }
}

fn version_at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

fn dataplane(spec: &Spec, out: &mut Vec<Finding>) {
    let calico = &spec.calico;
    if calico.dataplane == CalicoDataplane::Nftables
        && on_tailnet(spec)
        && !version_at_least(&calico.version, NFTABLES_FIXED_IN)
    {
        out.push(Finding::new(
            Rule::NftablesWithTailscale,
            Severity::Error,
            format!(
                "`calico.dataplane` is nftables with Calico {} on nodes that run Tailscale",
                calico.version
            ),
            "Felix's nftables mode crash-loops once Tailscale writes its own nft rules (fixed in Calico 3.33)",
            "set `dataplane = \"iptables\"`, or move to Calico 3.33 or later",
        ));
    }
}

fn dual_stack(spec: &Spec) -> bool {
    spec.network
        .pod_cidrs
        .iter()
        .any(|c| matches!(c, IpNet::V6(_)))
}

fn ipv6(spec: &Spec, out: &mut Vec<Finding>) {
    if !dual_stack(spec) {
        return;
    }
    let v6 = mtu::derive(spec, Family::Ipv6);
    if spec.calico.vxlan_mode.is_on() && !mtu::ipv6_vxlan_possible(spec) {
        let vxlan = mtu::Encapsulation::Vxlan;
        out.push(Finding::new(
            Rule::Ipv6VxlanOverTailnet,
            Severity::Warning,
            format!(
                "IPv6 VXLAN over the {} link would leave {} - {} = {} bytes, below IPv6's minimum of {IPV6_MINIMUM_MTU}",
                v6.limiting.kind.name(),
                v6.limiting.mtu,
                vxlan.overhead(Family::Ipv6),
                v6.tunnel_mtu(vxlan)
            ),
            "IPv6 pod traffic cannot be VXLAN-encapsulated over this link, so the IPv6 pool is rendered with `vxlanMode: Never` and IPv6 pod traffic between nodes is routed unencapsulated",
            format!(
                "route the IPv6 pod CIDR between nodes natively (e.g. advertise it as a Tailscale subnet route), or raise the {} MTU to at least {}",
                v6.limiting.kind.name(),
                IPV6_MINIMUM_MTU + vxlan.overhead(Family::Ipv6)
            ),
        ));
    }
    let v4 = mtu::derive(spec, Family::Ipv4);
    if mtu::cluster_pod_mtu(spec) < IPV6_MINIMUM_MTU {
        out.push(Finding::new(
            Rule::PodMtuBelowIpv6Minimum,
            Severity::Error,
            format!(
                "the cluster is dual-stack but the pod MTU is {} ({v4})",
                mtu::cluster_pod_mtu(spec)
            ),
            format!(
                "the kernel disables IPv6 on an interface whose MTU is below {IPV6_MINIMUM_MTU}, so pod veths get no IPv6 address and the CNI fails to add one"
            ),
            format!(
                "raise the {} MTU to at least {} (Tailscale's MTU can be raised), or make the cluster IPv4-only",
                v4.limiting.kind.name(),
                IPV6_MINIMUM_MTU + v4.overhead
            ),
        ));
    }
}

fn wireguard(spec: &Spec, out: &mut Vec<Finding>) {
    if spec.calico.wireguard && on_tailnet(spec) {
        let with = mtu::derive(spec, Family::Ipv4);
        out.push(Finding::new(
            Rule::WireguardOverTailscale,
            Severity::Warning,
            format!(
                "`calico.wireguard` is on while nodes already talk over Tailscale (pod MTU {})",
                with.pod_mtu
            ),
            "Tailscale already encrypts node-to-node traffic with WireGuard; Calico's WireGuard encrypts it a second time and costs 60 more bytes per packet (80 over IPv6)",
            "set `wireguard = false`",
        ));
    }
}

fn images(spec: &Spec, out: &mut Vec<Finding>) {
    let calico = &spec.calico;
    let tag = format!(":v{}", calico.version.trim_start_matches('v'));
    for (field, image) in [
        ("node_image", &calico.node_image),
        ("kube_controllers_image", &calico.kube_controllers_image),
    ] {
        if !image.ends_with(&tag) {
            out.push(Finding::new(
                Rule::ImageVersionMismatch,
                Severity::Warning,
                format!(
                    "`calico.{field}` `{image}` is not tagged `{tag}` although `calico.version` is {}",
                    calico.version
                ),
                "the CRDs and RBAC come from one release and the images from another; fields one expects may be missing in the other",
                format!("use the `{tag}` tag, or change `calico.version` to the images' release"),
            ));
        }
    }
}

fn crds(spec: &Spec, out: &mut Vec<Finding>) {
    match &spec.calico.crds_sha256 {
        None => out.push(Finding::new(
            Rule::CrdsNotPinned,
            Severity::Warning,
            "`calico.crds_sha256` is not set",
            "the NixOS module only applies the Calico CRDs it can pin; without them the IP pool and FelixConfiguration cannot be created",
            format!(
                "set it to the SHA-256 of https://raw.githubusercontent.com/projectcalico/calico/v{}/manifests/crds.yaml (`sha256sum`)",
                spec.calico.version
            ),
        )),
        Some(hash) if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            out.push(Finding::new(
                Rule::CrdsNotPinned,
                Severity::Error,
                format!("`calico.crds_sha256` `{hash}` is not 64 hex digits"),
                "fetchurl refuses a malformed hash, so the NixOS build fails",
                "paste the hex output of `sha256sum crds.yaml`",
            ))
        }
        Some(_) => {}
    }
}

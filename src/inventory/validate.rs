//! Semantic checks of a parsed inventory: everything serde cannot see.
//!
//! Collects every problem instead of stopping at the first, each tied to the
//! field it concerns. Reading the host key files happens here too, because an
//! unreadable or unsupported key is an inventory error like any other.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::error::Problem;
use super::locate::FieldPath;
use super::recipient::{HostKey, Recipient};
use super::{Node, Spec};

pub struct Checked {
    pub problems: Vec<(FieldPath, Problem)>,
    pub host_keys: BTreeMap<String, HostKey>,
    pub operator_recipients: BTreeMap<String, Vec<Recipient>>,
}

pub fn validate(path: &Path, spec: &Spec) -> Checked {
    let mut out = Checked {
        problems: Vec::new(),
        host_keys: BTreeMap::new(),
        operator_recipients: BTreeMap::new(),
    };
    let root = FieldPath::root();
    check_cluster(spec, &root, &mut out.problems);
    check_network(spec, &root, &mut out.problems);
    check_pki(spec, &root, &mut out.problems);
    check_operators(spec, &root, &mut out);
    check_nodes(path, spec, &root, &mut out);
    out
}

fn check_cluster(spec: &Spec, root: &FieldPath, problems: &mut Vec<(FieldPath, Problem)>) {
    if !is_dns_label(&spec.cluster.name) {
        problems.push((
            root.key("cluster").key("name"),
            invalid(
                &spec.cluster.name,
                "cluster name",
                "use lowercase letters, digits and '-', starting with a letter (e.g. \"ducksnest\")",
            ),
        ));
    }
    if !is_dns_name(&spec.cluster.domain) {
        problems.push((
            root.key("cluster").key("domain"),
            invalid(
                &spec.cluster.domain,
                "cluster domain",
                "use a DNS domain such as \"cluster.local\"",
            ),
        ));
    }
    for (i, endpoint) in spec.api.endpoints.iter().enumerate() {
        if endpoint.parse::<IpAddr>().is_err() && !is_dns_name(endpoint) {
            problems.push((
                root.key("api").key("endpoints").index(i),
                invalid(
                    endpoint,
                    "API endpoint",
                    "give a bare host name or IP address (no scheme, no port: the port is `api.port`)",
                ),
            ));
        }
    }
    if spec.api.port == 0 {
        problems.push((
            root.key("api").key("port"),
            Problem::OutOfRange {
                what: "api.port",
                bound: "between 1 and 65535",
                value: 0,
                hint: "use 6443, the API server's usual port",
            },
        ));
    }
}

fn check_network(spec: &Spec, root: &FieldPath, problems: &mut Vec<(FieldPath, Problem)>) {
    let net = &spec.network;
    let at = root.key("network");
    let lists: [(&'static str, &Vec<IpNet>, &'static str); 4] = [
        ("network.service_cidrs", &net.service_cidrs, "10.96.0.0/12"),
        ("network.pod_cidrs", &net.pod_cidrs, "10.244.0.0/16"),
        ("network.lan_cidrs", &net.lan_cidrs, ""),
        ("network.vpc_cidrs", &net.vpc_cidrs, ""),
    ];
    for (name, list, example) in lists {
        let field = at.key(name.trim_start_matches("network."));
        if list.is_empty() && !example.is_empty() {
            problems.push((
                field.clone(),
                Problem::EmptyCidrs {
                    list: name,
                    example,
                },
            ));
        }
        if name.ends_with("service_cidrs") || name.ends_with("pod_cidrs") {
            for family in [true, false] {
                let of_family: Vec<_> = list
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| matches!(c, IpNet::V4(_)) == family)
                    .collect();
                if let [(_, a), (j, b), ..] = of_family[..] {
                    problems.push((
                        field.index(j),
                        Problem::TwoOfAFamily {
                            list: name,
                            family: if family { "IPv4" } else { "IPv6" },
                            a: *a,
                            b: *b,
                        },
                    ));
                }
            }
        }
        for (i, cidr) in list.iter().enumerate() {
            if cidr.trunc() != *cidr {
                problems.push((
                    field.index(i),
                    invalid(
                        &cidr.to_string(),
                        "network range (host bits are set)",
                        "write the network address, e.g. 10.244.0.0/16",
                    ),
                ));
            }
        }
    }
    let tailnet = [net.tailnet_cidr];
    let pairs: [OverlapRule<'_>; 7] = [
        (
            "pod CIDR",
            &net.pod_cidrs,
            "service CIDR",
            &net.service_cidrs,
            "",
        ),
        (
            "pod CIDR",
            &net.pod_cidrs,
            "LAN",
            &net.lan_cidrs,
            " (192.168.0.0/16, Calico's fallback, often collides with home LANs)",
        ),
        ("pod CIDR", &net.pod_cidrs, "VPC", &net.vpc_cidrs, ""),
        (
            "pod CIDR",
            &net.pod_cidrs,
            "tailnet",
            &tailnet,
            " (Tailscale owns 100.64.0.0/10)",
        ),
        (
            "service CIDR",
            &net.service_cidrs,
            "LAN",
            &net.lan_cidrs,
            "",
        ),
        (
            "service CIDR",
            &net.service_cidrs,
            "VPC",
            &net.vpc_cidrs,
            "",
        ),
        (
            "service CIDR",
            &net.service_cidrs,
            "tailnet",
            &tailnet,
            " (Tailscale owns 100.64.0.0/10)",
        ),
    ];
    for (first, xs, second, ys, hint) in pairs {
        let field_name = match first {
            "pod CIDR" => "pod_cidrs",
            _ => "service_cidrs",
        };
        for (i, a) in xs.iter().enumerate() {
            for b in ys {
                if overlaps(a, b) {
                    problems.push((
                        at.key(field_name).index(i),
                        Problem::Overlap {
                            first,
                            a: *a,
                            second,
                            b: *b,
                            hint,
                        },
                    ));
                }
            }
        }
    }
    let mtu = at.key("mtu");
    for (name, value) in [
        ("lan", net.mtu.lan),
        ("vpc", net.mtu.vpc),
        ("tailnet", net.mtu.tailnet),
    ] {
        if !(576..=65535).contains(&value) {
            problems.push((
                mtu.key(name),
                Problem::OutOfRange {
                    what: "an MTU",
                    bound: "between 576 and 65535",
                    value: i64::from(value),
                    hint: "use the link's real MTU (`ip link` shows it; Tailscale uses 1280)",
                },
            ));
        }
    }
}

fn check_pki(spec: &Spec, root: &FieldPath, problems: &mut Vec<(FieldPath, Problem)>) {
    let at = root.key("pki");
    let pki = &spec.pki;
    if pki.ca_validity_days == 0 {
        problems.push((
            at.key("ca_validity_days"),
            Problem::OutOfRange {
                what: "pki.ca_validity_days",
                bound: "at least 1",
                value: 0,
                hint: "use 3650 (ten years), kubeadm's default",
            },
        ));
    }
    if pki.leaf_validity_days == 0 || pki.leaf_validity_days > pki.ca_validity_days {
        problems.push((
            at.key("leaf_validity_days"),
            Problem::OutOfRange {
                what: "pki.leaf_validity_days",
                bound: "at least 1 and at most pki.ca_validity_days",
                value: i64::from(pki.leaf_validity_days),
                hint: "use 365, kubeadm's default; a leaf cannot outlive its CA",
            },
        ));
    }
    if pki.renew_before_days >= pki.leaf_validity_days {
        problems.push((
            at.key("renew_before_days"),
            Problem::OutOfRange {
                what: "pki.renew_before_days",
                bound: "smaller than pki.leaf_validity_days",
                value: i64::from(pki.renew_before_days),
                hint: "use 30: otherwise every run would re-issue every certificate",
            },
        ));
    }
    for (authority, pins) in &pki.pins {
        for (i, pin) in pins.iter().enumerate() {
            let hex = pin.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                problems.push((
                    at.key("pins").key(authority.name()).index(i),
                    invalid(
                        pin,
                        "CA pin",
                        "pins are `sha256:` and 64 hex digits; let `kubepki recreate` write them",
                    ),
                ));
            }
        }
    }
}

fn check_operators(spec: &Spec, root: &FieldPath, out: &mut Checked) {
    if spec.operators.is_empty() {
        out.problems
            .push((root.key("operators"), Problem::NoOperators));
    }
    let mut seen = BTreeSet::new();
    for (i, operator) in spec.operators.iter().enumerate() {
        let at = root.key("operators").index(i);
        if !seen.insert(operator.name.as_str()) {
            out.problems.push((
                at.key("name"),
                Problem::DuplicateOperator {
                    name: operator.name.clone(),
                },
            ));
        }
        if operator.recipients.is_empty() {
            out.problems.push((
                at.key("recipients"),
                Problem::NoRecipients {
                    name: operator.name.clone(),
                },
            ));
        }
        let owner = format!("operator `{}`", operator.name);
        let mut parsed = Vec::new();
        for (j, text) in operator.recipients.iter().enumerate() {
            match Recipient::parse(text, &owner) {
                Ok(r) => parsed.push(r),
                Err(p) => out.problems.push((at.key("recipients").index(j), p)),
            }
        }
        out.operator_recipients
            .insert(operator.name.clone(), parsed);
    }
}

fn check_nodes(path: &Path, spec: &Spec, root: &FieldPath, out: &mut Checked) {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut seen = BTreeSet::new();
    for (i, node) in spec.nodes.iter().enumerate() {
        let at = root.key("nodes").index(i);
        if !seen.insert(node.name.as_str()) {
            out.problems.push((
                at.key("name"),
                Problem::DuplicateNode {
                    name: node.name.clone(),
                },
            ));
        }
        if !is_dns_name(&node.name) {
            out.problems.push((
                at.key("name"),
                invalid(
                    &node.name,
                    "node name",
                    "use lowercase letters, digits, '-' and '.', as in a host name",
                ),
            ));
        }
        if node.roles.is_empty() {
            out.problems.push((
                at.key("roles"),
                Problem::NoRoles {
                    node: node.name.clone(),
                },
            ));
        }
        for (j, name) in node.names.iter().enumerate() {
            if !is_dns_name(name) {
                out.problems.push((
                    at.key("names").index(j),
                    invalid(
                        name,
                        "DNS name",
                        "use a host name like \"node.tailnet.ts.net\"",
                    ),
                ));
            }
        }
        check_addresses(spec, node, &at, &mut out.problems);
        let key_path = base.join(&node.host_key);
        match std::fs::read_to_string(&key_path) {
            Err(e) => out.problems.push((
                at.key("host_key"),
                Problem::UnreadableHostKey {
                    node: node.name.clone(),
                    path: key_path.clone(),
                    reason: e.to_string(),
                },
            )),
            Ok(text) => {
                let owner = format!("node `{}` (host key {})", node.name, key_path.display());
                let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                match Recipient::parse(line, &owner) {
                    Ok(recipient) => {
                        out.host_keys.insert(
                            node.name.clone(),
                            HostKey {
                                path: key_path,
                                recipient,
                            },
                        );
                    }
                    Err(p) => out.problems.push((at.key("host_key"), p)),
                }
            }
        }
    }
    if !spec.nodes.iter().any(Node::is_control_plane) {
        out.problems
            .push((root.key("nodes"), Problem::NoControlPlane));
    } else if !spec.nodes.iter().any(Node::is_etcd) && spec.etcd.external_servers.is_empty() {
        out.problems.push((root.key("nodes"), Problem::NoEtcd));
    }
}

fn check_addresses(
    spec: &Spec,
    node: &Node,
    at: &FieldPath,
    problems: &mut Vec<(FieldPath, Problem)>,
) {
    let addresses = at.key("addresses");
    let net = &spec.network;
    if node.addresses.all().is_empty() {
        problems.push((
            addresses.clone(),
            Problem::NoAddress {
                node: node.name.clone(),
            },
        ));
    }
    let kinds: [(&'static str, &Vec<IpAddr>, &Vec<IpNet>); 2] = [
        ("lan", &node.addresses.lan, &net.lan_cidrs),
        ("vpc", &node.addresses.vpc, &net.vpc_cidrs),
    ];
    for (kind, ips, cidrs) in kinds {
        for (j, ip) in ips.iter().enumerate() {
            if !cidrs.is_empty() && !cidrs.iter().any(|c| c.contains(ip)) {
                problems.push((
                    addresses.key(kind).index(j),
                    Problem::AddressOutsideNetwork {
                        node: node.name.clone(),
                        ip: *ip,
                        kind,
                    },
                ));
            }
        }
    }
    for (j, ip) in node.addresses.tailnet.iter().enumerate() {
        // Tailscale's IPv6 addresses live in fd7a:115c:a1e0::/48, outside the IPv4 tailnet range.
        if ip.is_ipv4() && !net.tailnet_cidr.contains(ip) {
            problems.push((
                addresses.key("tailnet").index(j),
                Problem::TailnetAddressOutside {
                    node: node.name.clone(),
                    ip: *ip,
                    cidr: net.tailnet_cidr,
                },
            ));
        }
    }
    if let Some(ip) = node.node_ip
        && !node.addresses.all().contains(&ip)
    {
        problems.push((
            at.key("node_ip"),
            Problem::NodeIpNotAnAddress {
                node: node.name.clone(),
                ip,
            },
        ));
    }
}

/// Two lists of ranges that must not overlap: (name, ranges, other name, other ranges, hint).
type OverlapRule<'a> = (
    &'static str,
    &'a [IpNet],
    &'static str,
    &'a [IpNet],
    &'static str,
);

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn invalid(value: &str, what: &'static str, hint: &'static str) -> Problem {
    Problem::Invalid {
        value: value.to_string(),
        what,
        hint,
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// RFC 1123 subdomain, as Kubernetes requires of node names; also fine for SANs.
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

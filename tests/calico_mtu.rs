//! The pod MTU model: every overhead combination, and which links count.

use std::path::PathBuf;

use kubepki::calico::mtu::{self, Encapsulation, Family, LinkKind};
use kubepki::inventory::{EncapsulationMode, Inventory};

fn example() -> Inventory {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hosts/cluster.toml");
    Inventory::load(&path).unwrap_or_else(|e| panic!("example inventory: {e}"))
}

#[test]
fn the_example_cluster_gets_1230_limited_by_the_tailnet_and_vxlan() {
    let inventory = example();
    assert_eq!(mtu::pod_mtu(&inventory), 1230);
    // IPv6 VXLAN would leave 1210 < 1280, so IPv6 pod traffic is not encapsulated.
    assert_eq!(mtu::pod_mtu_v6(&inventory), 1280);
    let v6 = mtu::derive(&inventory.spec, Family::Ipv6);
    assert_eq!(v6.infeasible, [Encapsulation::Vxlan]);
    assert_eq!(v6.tunnel_mtu(Encapsulation::Vxlan), 1210);
    assert!(!mtu::ipv6_vxlan_possible(&inventory.spec));
    let d = mtu::derive(&inventory.spec, Family::Ipv4);
    assert_eq!(d.limiting.kind, LinkKind::Tailnet);
    assert_eq!(d.limiting.mtu, 1280);
    assert_eq!(d.encapsulation, Encapsulation::Vxlan);
    assert_eq!(d.overhead, 50);
    let kinds: Vec<LinkKind> = d.links.iter().map(|l| l.kind).collect();
    assert_eq!(kinds, [LinkKind::Lan, LinkKind::Vpc, LinkKind::Tailnet]);
    let text = d.to_string();
    assert!(
        text.contains("1230")
            && text.contains("tailnet link MTU 1280")
            && text.contains("VXLAN overhead 50"),
        "{text}"
    );
}

#[test]
fn felix_overheads_per_encapsulation_and_family() {
    let table = [
        (Encapsulation::None, 0, 0),
        (Encapsulation::IpInIp, 20, 20),
        (Encapsulation::Vxlan, 50, 70),
        (Encapsulation::WireGuard, 60, 80),
    ];
    for (encapsulation, v4, v6) in table {
        assert_eq!(
            encapsulation.overhead(Family::Ipv4),
            v4,
            "{encapsulation:?} IPv4"
        );
        assert_eq!(
            encapsulation.overhead(Family::Ipv6),
            v6,
            "{encapsulation:?} IPv6"
        );
    }
}

#[test]
fn every_combination_of_ipip_vxlan_and_wireguard() {
    use EncapsulationMode::{Always as A, CrossSubnet as C, Never as N};
    // (ipip, vxlan, wireguard) -> IPv4 over a 1280 tailnet (MTU, deciding encapsulation),
    // IPv6 over a 1280 tailnet, IPv6 over a 1500 tailnet.
    // Calico has no IP-in-IP for IPv6; an IPv6 encapsulation leaving less than 1280 is
    // impossible, so over a 1280 tailnet IPv6 always goes unencapsulated.
    let table = [
        (N, N, false, 1280, Encapsulation::None, 1280, 1500),
        (N, N, true, 1220, Encapsulation::WireGuard, 1280, 1420),
        (N, C, false, 1230, Encapsulation::Vxlan, 1280, 1430),
        (N, C, true, 1220, Encapsulation::WireGuard, 1280, 1420),
        (N, A, false, 1230, Encapsulation::Vxlan, 1280, 1430),
        (N, A, true, 1220, Encapsulation::WireGuard, 1280, 1420),
        (C, N, false, 1260, Encapsulation::IpInIp, 1280, 1500),
        (C, N, true, 1220, Encapsulation::WireGuard, 1280, 1420),
        (C, C, false, 1230, Encapsulation::Vxlan, 1280, 1430),
        (C, C, true, 1220, Encapsulation::WireGuard, 1280, 1420),
        (C, A, false, 1230, Encapsulation::Vxlan, 1280, 1430),
        (C, A, true, 1220, Encapsulation::WireGuard, 1280, 1420),
        (A, N, false, 1260, Encapsulation::IpInIp, 1280, 1500),
        (A, N, true, 1220, Encapsulation::WireGuard, 1280, 1420),
        (A, C, false, 1230, Encapsulation::Vxlan, 1280, 1430),
        (A, C, true, 1220, Encapsulation::WireGuard, 1280, 1420),
        (A, A, false, 1230, Encapsulation::Vxlan, 1280, 1430),
        (A, A, true, 1220, Encapsulation::WireGuard, 1280, 1420),
    ];
    let base = example();
    for (ipip, vxlan, wireguard, v4, deciding, v6_1280, v6_1500) in table {
        let mut inventory = base.clone();
        inventory.spec.calico.ipip_mode = ipip;
        inventory.spec.calico.vxlan_mode = vxlan;
        inventory.spec.calico.wireguard = wireguard;
        let case = format!("ipip {ipip:?}, vxlan {vxlan:?}, wireguard {wireguard}");
        assert_eq!(mtu::pod_mtu(&inventory), v4, "{case}: IPv4");
        assert_eq!(
            mtu::pod_mtu_v6(&inventory),
            v6_1280,
            "{case}: IPv6 over 1280"
        );
        let d = mtu::derive(&inventory.spec, Family::Ipv4);
        assert_eq!(d.encapsulation, deciding, "{case}");
        assert_eq!(d.pod_mtu, d.limiting.mtu - d.overhead, "{case}");

        inventory.spec.network.mtu.tailnet = 1500;
        assert_eq!(
            mtu::pod_mtu_v6(&inventory),
            v6_1500,
            "{case}: IPv6 over 1500"
        );
        let d6 = mtu::derive(&inventory.spec, Family::Ipv6);
        assert!(d6.infeasible.is_empty(), "{case}: {d6}");
    }
}

#[test]
fn a_dual_stack_cluster_gets_the_smaller_of_both_families() {
    let mut inventory = example();
    inventory
        .spec
        .network
        .pod_cidrs
        .push("fd10:244::/64".parse().unwrap_or_else(|e| panic!("{e}")));
    // Over 1280: IPv4 VXLAN 1230, IPv6 unencapsulated 1280.
    assert_eq!(mtu::pod_mtu(&inventory), 1230);
    // Over 1500: IPv4 VXLAN 1450, IPv6 VXLAN 1430; Felix takes the smaller.
    inventory.spec.network.mtu.tailnet = 1500;
    assert_eq!(mtu::pod_mtu(&inventory), 1430);
    assert!(mtu::ipv6_vxlan_possible(&inventory.spec));
}

#[test]
fn only_links_some_node_sits_on_count() {
    let base = example();

    // Home LAN only: 1500 - 50.
    let mut lan_only = base.clone();
    lan_only.spec.nodes.iter_mut().for_each(|n| {
        n.addresses.tailnet.clear();
        n.addresses.vpc.clear();
    });
    let d = mtu::derive(&lan_only.spec, Family::Ipv4);
    assert_eq!((d.limiting.kind, d.pod_mtu), (LinkKind::Lan, 1450));

    // VPC only (a cloud-only cluster): 9001 - 50.
    let mut vpc_only = base.clone();
    vpc_only.spec.nodes.retain(|n| !n.addresses.vpc.is_empty());
    vpc_only
        .spec
        .nodes
        .iter_mut()
        .for_each(|n| n.addresses.tailnet.clear());
    let d = mtu::derive(&vpc_only.spec, Family::Ipv4);
    assert_eq!((d.limiting.kind, d.pod_mtu), (LinkKind::Vpc, 8951));

    // The inventory's MTUs are read, not assumed: a 1400 tailnet gives 1350.
    let mut bigger_tailnet = base.clone();
    bigger_tailnet.spec.network.mtu.tailnet = 1400;
    assert_eq!(mtu::pod_mtu(&bigger_tailnet), 1350);

    // A LAN smaller than the tailnet limits instead.
    let mut small_lan = base.clone();
    small_lan.spec.network.mtu.lan = 1200;
    let d = mtu::derive(&small_lan.spec, Family::Ipv4);
    assert_eq!((d.limiting.kind, d.pod_mtu), (LinkKind::Lan, 1150));

    // Nodes with public addresses only cross the internet, taken to carry what a LAN does.
    let mut public_only = base;
    public_only.spec.nodes.iter_mut().for_each(|n| {
        n.addresses.lan.clear();
        n.addresses.vpc.clear();
        n.addresses.tailnet.clear();
    });
    let d = mtu::derive(&public_only.spec, Family::Ipv4);
    assert_eq!(d.links.len(), 1);
    assert_eq!((d.limiting.kind, d.pod_mtu), (LinkKind::Lan, 1450));
}

#[test]
fn tunnel_mtu_is_the_limiting_link_minus_that_encapsulation() {
    let mut inventory = example();
    inventory.spec.calico.wireguard = true;
    let d = mtu::derive(&inventory.spec, Family::Ipv4);
    assert_eq!(d.pod_mtu, 1220);
    assert_eq!(d.tunnel_mtu(Encapsulation::Vxlan), 1230);
    assert_eq!(d.tunnel_mtu(Encapsulation::WireGuard), 1220);
    assert_eq!(
        d.encapsulations,
        [Encapsulation::Vxlan, Encapsulation::WireGuard]
    );
}

#[test]
fn kubepki_calico_explain_names_the_link_and_the_overhead() {
    let inventory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hosts/cluster.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubepki"))
        .args(["calico", "--explain", "-f"])
        .arg(&inventory)
        .output()
        .unwrap_or_else(|e| panic!("run kubepki calico --explain: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("IPv4 pod MTU 1230 = tailnet link MTU 1280")
            && stdout.contains("VXLAN overhead 50")
            && stdout.contains("conflist mtu): 1230"),
        "{stdout}"
    );
}

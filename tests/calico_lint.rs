//! The network lint: one test per rule, the example cluster clean, and the owner's old inconsistency caught.

use std::path::{Path, PathBuf};
use std::process::Command;

use kubepki::calico::lint::{self, Finding, Rule, Severity};
use kubepki::inventory::{CalicoBackend, CalicoDataplane, EncapsulationMode, Inventory};

fn hosts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hosts")
}

fn example() -> Inventory {
    Inventory::load(&hosts().join("cluster.toml"))
        .unwrap_or_else(|e| panic!("example inventory: {e}"))
}

fn example_source() -> String {
    std::fs::read_to_string(hosts().join("cluster.toml"))
        .unwrap_or_else(|e| panic!("read example: {e}"))
}

/// The findings of `rule` for `inventory`, each checked to say what, why and how.
fn findings(inventory: &Inventory, rule: Rule) -> Vec<Finding> {
    let all = lint::lint(inventory);
    for f in &all {
        assert!(
            !f.what.is_empty() && !f.why.is_empty() && !f.fix.is_empty(),
            "{f}"
        );
        let text = f.to_string();
        assert!(
            text.contains(f.rule.name()) && text.contains("why:") && text.contains("fix:"),
            "{text}"
        );
    }
    all.into_iter().filter(|f| f.rule == rule).collect()
}

fn assert_one(inventory: &Inventory, rule: Rule, severity: Severity) -> Finding {
    let found = findings(inventory, rule);
    assert_eq!(
        found.len(),
        1,
        "expected one {} finding, got {found:#?}",
        rule.name()
    );
    assert_eq!(found[0].severity, severity, "{}", found[0]);
    found[0].clone()
}

fn assert_none(inventory: &Inventory, rule: Rule) {
    let found = findings(inventory, rule);
    assert!(found.is_empty(), "unexpected: {found:#?}");
}

#[test]
fn the_example_cluster_is_clean() {
    let all = lint::lint(&example());
    assert!(all.is_empty(), "{all:#?}");
}

#[test]
fn tailnet_mtu_above_what_tailscale_uses() {
    let mut inv = example();
    inv.spec.network.mtu.tailnet = 1500;
    let f = assert_one(&inv, Rule::TailnetMtuAboveTailscale, Severity::Warning);
    assert!(f.what.contains("1500") && f.what.contains("1450"), "{f}");
    inv.spec
        .nodes
        .iter_mut()
        .for_each(|n| n.addresses.tailnet.clear());
    assert_none(&inv, Rule::TailnetMtuAboveTailscale);
}

#[test]
fn pod_cidr_overlapping_service_lan_vpc_tailnet_or_a_node() {
    // Validation refuses most of these at load; the lint states them for a hand-built inventory.
    let cases = [
        ("10.96.0.0/16", "service CIDR"),
        ("192.168.0.0/16", "LAN"),
        ("172.31.0.0/16", "VPC"),
        ("100.64.0.0/16", "tailnet"),
        ("169.254.0.0/16", "link-local"),
    ];
    for (pod, other) in cases {
        let mut inv = example();
        inv.spec.network.pod_cidrs = vec![pod.parse().unwrap_or_else(|e| panic!("{pod}: {e}"))];
        let found = findings(&inv, Rule::PodCidrOverlap);
        assert!(
            found
                .iter()
                .any(|f| f.severity == Severity::Error && f.what.contains(other)),
            "{pod} vs {other}: {found:#?}"
        );
    }
    // A node address inside the pod CIDR, with no LAN range declared to catch it at load.
    let mut inv = example();
    inv.spec.network.lan_cidrs.clear();
    inv.spec.nodes[1].addresses.lan = vec!["10.244.3.7".parse().unwrap_or_else(|e| panic!("{e}"))];
    let f = assert_one(&inv, Rule::PodCidrOverlap, Severity::Error);
    assert!(f.what.contains("laptop-firebat"), "{f}");
}

#[test]
fn ipip_and_vxlan_both_on() {
    let mut inv = example();
    inv.spec.calico.ipip_mode = EncapsulationMode::CrossSubnet;
    inv.spec.calico.backend = CalicoBackend::Bird;
    assert_one(&inv, Rule::IpipAndVxlan, Severity::Error);
    assert_none(&inv, Rule::IpipWithoutBird);
}

#[test]
fn ipip_with_the_vxlan_backend_has_no_bird() {
    let mut inv = example();
    inv.spec.calico.ipip_mode = EncapsulationMode::Always;
    inv.spec.calico.vxlan_mode = EncapsulationMode::Never;
    assert_one(&inv, Rule::IpipWithoutBird, Severity::Error);
    inv.spec.calico.backend = CalicoBackend::Bird;
    assert_none(&inv, Rule::IpipWithoutBird);
}

#[test]
fn vxlan_backend_without_any_encapsulation_has_no_routes() {
    let mut inv = example();
    inv.spec.calico.vxlan_mode = EncapsulationMode::Never;
    assert_one(&inv, Rule::NoCrossNodeRoutes, Severity::Error);
}

#[test]
fn cross_subnet_where_every_node_address_is_a_tailnet_32() {
    let mut inv = example();
    for node in &mut inv.spec.nodes {
        node.node_ip = node.addresses.tailnet.first().copied();
    }
    let f = assert_one(&inv, Rule::CrossSubnetAlwaysEncapsulates, Severity::Warning);
    assert!(f.why.contains("Always"), "{f}");
    inv.spec.calico.vxlan_mode = EncapsulationMode::Always;
    assert_none(&inv, Rule::CrossSubnetAlwaysEncapsulates);
}

#[test]
fn mark_mask_colliding_with_tailscale_or_unparsable() {
    let mut inv = example();
    inv.spec.calico.iptables_mark_mask = "0xffff0000".into(); // Calico's default
    let f = assert_one(&inv, Rule::MarkMaskCollision, Severity::Error);
    assert!(
        f.what.contains("Tailscale") && f.fix.contains("0xff000000"),
        "{f}"
    );
    inv.spec.calico.iptables_mark_mask = "0x0000c000".into();
    let f = assert_one(&inv, Rule::MarkMaskCollision, Severity::Error);
    assert!(f.what.contains("kube-proxy"), "{f}");
    inv.spec.calico.iptables_mark_mask = "ff000000".into();
    assert_one(&inv, Rule::MarkMaskInvalid, Severity::Error);
}

#[test]
fn autodetection_methods_that_can_pick_tailscale0() {
    let can_pick = [
        "first-found",
        "can-reach=100.64.0.10",
        "can-reach=ec2-controlplane.tailnet-ducksnest.ts.net",
        "interface=wlan.*,tailscale.*",
        "interface=.*",
        "skip-interface=docker.*,br-.*",
        "cidr=100.64.0.0/10",
    ];
    for method in can_pick {
        let mut inv = example();
        inv.spec.calico.ip_autodetection = method.into();
        let f = assert_one(&inv, Rule::AutodetectionCanPickTailscale, Severity::Warning);
        assert!(f.what.contains("laptop-firebat"), "{method}: {f}");
    }
    let safe = [
        "kubernetes-internal-ip",
        "interface=wlan.*,eth.*",
        "skip-interface=tailscale.*",
        "skip-interface=docker.*, tailscale0",
        "can-reach=192.168.0.1",
        "cidr=192.168.0.0/24,172.31.0.0/16",
    ];
    for method in safe {
        let mut inv = example();
        inv.spec.calico.ip_autodetection = method.into();
        assert_none(&inv, Rule::AutodetectionCanPickTailscale);
        assert_none(&inv, Rule::AutodetectionInvalid);
    }
    for bad in ["first", "interface=wlan(", "cidr=192.168.0.0/33"] {
        let mut inv = example();
        inv.spec.calico.ip_autodetection = bad.into();
        assert_one(&inv, Rule::AutodetectionInvalid, Severity::Error);
    }
}

#[test]
fn nftables_dataplane_beside_tailscale() {
    let mut inv = example();
    inv.spec.calico.dataplane = CalicoDataplane::Nftables;
    assert_one(&inv, Rule::NftablesWithTailscale, Severity::Error);
    inv.spec.calico.version = "3.33.0".into();
    assert_none(&inv, Rule::NftablesWithTailscale);
}

fn dual_stack(mut inv: Inventory) -> Inventory {
    inv.spec
        .network
        .pod_cidrs
        .push("fd10:244::/64".parse().unwrap_or_else(|e| panic!("{e}")));
    inv
}

#[test]
fn ipv6_vxlan_over_a_1280_tailnet() {
    let inv = dual_stack(example());
    let f = assert_one(&inv, Rule::Ipv6VxlanOverTailnet, Severity::Warning);
    assert!(f.what.contains("1210") && f.why.contains("Never"), "{f}");
    let mut raised = dual_stack(example());
    raised.spec.network.mtu.tailnet = 1400;
    assert_none(&raised, Rule::Ipv6VxlanOverTailnet);
}

#[test]
fn dual_stack_pod_mtu_below_ipv6_minimum() {
    let inv = dual_stack(example());
    let f = assert_one(&inv, Rule::PodMtuBelowIpv6Minimum, Severity::Error);
    assert!(f.what.contains("1230"), "{f}");
    assert_none(&example(), Rule::PodMtuBelowIpv6Minimum);
}

#[test]
fn calico_wireguard_on_top_of_tailscale() {
    let mut inv = example();
    inv.spec.calico.wireguard = true;
    let f = assert_one(&inv, Rule::WireguardOverTailscale, Severity::Warning);
    assert!(f.what.contains("1220"), "{f}");
}

#[test]
fn images_from_another_release() {
    let mut inv = example();
    inv.spec.calico.node_image = "quay.io/calico/node:v3.29.0".into();
    let f = assert_one(&inv, Rule::ImageVersionMismatch, Severity::Warning);
    assert!(f.what.contains("node_image"), "{f}");
}

#[test]
fn crds_without_or_with_a_malformed_pin() {
    let mut inv = example();
    inv.spec.calico.crds_sha256 = None;
    assert_one(&inv, Rule::CrdsNotPinned, Severity::Warning);
    inv.spec.calico.crds_sha256 = Some("sha256-abc".into());
    assert_one(&inv, Rule::CrdsNotPinned, Severity::Error);
}

fn copy_hosts(to: &Path, cluster_toml: &str) {
    for entry in std::fs::read_dir(hosts()).unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        if entry.path().is_dir() && entry.file_name() != "pki" {
            let dir = to.join(entry.file_name());
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
            for key in std::fs::read_dir(entry.path()).unwrap_or_else(|e| panic!("{e}")) {
                let key = key.unwrap_or_else(|e| panic!("{e}"));
                std::fs::copy(key.path(), dir.join(key.file_name()))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    std::fs::write(to.join("cluster.toml"), cluster_toml).unwrap_or_else(|e| panic!("{e}"));
}

/// The owner's old tree: README says VXLAN CrossSubnet, the IP pool says
/// `vxlanMode: Never, ipipMode: Always`, Felix's VXLAN MTU is 1230.
#[test]
fn the_owners_old_inconsistency_is_a_valid_inventory_that_the_lint_refuses() {
    let source = example_source()
        .replace("vxlan_mode = \"CrossSubnet\"", "vxlan_mode = \"Never\"")
        .replace("ipip_mode = \"Never\"", "ipip_mode = \"Always\"");
    assert_ne!(source, example_source());
    let inv = Inventory::from_source(&hosts().join("cluster.toml"), &source)
        .unwrap_or_else(|e| panic!("the old settings still parse and validate: {e}"));
    assert_eq!(inv.spec.calico.backend, CalicoBackend::Vxlan);
    let f = assert_one(&inv, Rule::IpipWithoutBird, Severity::Error);
    // The lint names the MTU mismatch too: IP-in-IP's tunnel would be 1260, not VXLAN's 1230.
    assert!(f.why.contains("1260") && f.why.contains("1230"), "{f}");

    // And the command exits non-zero on it, while the example exits zero.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    copy_hosts(dir.path(), &source);
    let out = Command::new(env!("CARGO_BIN_EXE_kubepki"))
        .args(["lint", "-f"])
        .arg(dir.path().join("cluster.toml"))
        .output()
        .unwrap_or_else(|e| panic!("run kubepki lint: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("error[ipip-without-bird]"), "{stdout}");

    let ok = Command::new(env!("CARGO_BIN_EXE_kubepki"))
        .args(["lint", "-f"])
        .arg(hosts().join("cluster.toml"))
        .output()
        .unwrap_or_else(|e| panic!("run kubepki lint: {e}"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
}

#[test]
fn warnings_alone_exit_zero() {
    // Turning Calico's WireGuard on is a warning only.
    let source = example_source().replace("[calico]\n", "[calico]\nwireguard = true\n");
    assert_ne!(source, example_source());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    copy_hosts(dir.path(), &source);
    let out = Command::new(env!("CARGO_BIN_EXE_kubepki"))
        .args(["lint", "-f"])
        .arg(dir.path().join("cluster.toml"))
        .output()
        .unwrap_or_else(|e| panic!("run kubepki lint: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("warning[wireguard-over-tailscale]"),
        "{stdout}"
    );
}

#[test]
fn block_size_outside_calico_ipam_limits() {
    let mut inv = example();
    inv.spec.calico.block_size = 16;
    assert_one(&inv, Rule::BlockSizeInvalid, Severity::Error);
    inv.spec.calico.block_size = 26;
    inv.spec.network.pod_cidrs = vec!["10.244.0.0/28".parse().unwrap_or_else(|e| panic!("{e}"))];
    let f = assert_one(&inv, Rule::BlockSizeInvalid, Severity::Error);
    assert!(f.what.contains("10.244.0.0/28"), "{f}");
}

#[test]
fn lint_json_lists_rule_severity_and_advice() {
    let source = example_source().replace("[calico]\n", "[calico]\nwireguard = true\n");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    copy_hosts(dir.path(), &source);
    let out = Command::new(env!("CARGO_BIN_EXE_kubepki"))
        .args(["lint", "--json", "-f"])
        .arg(dir.path().join("cluster.toml"))
        .output()
        .unwrap_or_else(|e| panic!("run kubepki lint --json: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json[0]["rule"], "wireguard-over-tailscale");
    assert_eq!(json[0]["severity"], "warning");
    assert!(
        json[0]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("wireguard = false")),
        "{json:#}"
    );
}

#[test]
fn plan_runs_the_lint_and_fails_on_its_errors() {
    let source = example_source().replace("ipip_mode = \"Never\"", "ipip_mode = \"Always\"");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    copy_hosts(dir.path(), &source);
    let out = Command::new(env!("CARGO_BIN_EXE_kubepki"))
        .args(["plan", "-f"])
        .arg(dir.path().join("cluster.toml"))
        .output()
        .unwrap_or_else(|e| panic!("run kubepki plan: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("network lint"), "{stdout}");
    assert!(stdout.contains("error[ipip-without-bird]"), "{stdout}");

    let json = Command::new(env!("CARGO_BIN_EXE_kubepki"))
        .args(["plan", "--json", "-f"])
        .arg(dir.path().join("cluster.toml"))
        .output()
        .unwrap_or_else(|e| panic!("run kubepki plan --json: {e}"));
    assert!(!json.status.success());
    let value: serde_json::Value =
        serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("plan --json: {e}"));
    assert!(
        value["lint"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["severity"] == "error")),
        "{value}"
    );
}

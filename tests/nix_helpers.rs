//! The Nix side reads hosts/cluster.toml the way the tool does.
//!
//! Runs Debian's Nix 2.8 (`nix-instantiate`, no nixpkgs needed): every `.nix`
//! file in the repository parses; nix/inventory.nix evaluated on an inventory
//! gives exactly what `kubepki inventory --derived` prints for it (the spec
//! with defaults, nodes, roles, addresses, primary IPs, API URL, CIDRs,
//! service IPs, pod MTU), for the example cluster and for variants that take
//! the other branches of each rule; nix/bundle.nix maps every file of the
//! plan to its installed path.

mod nix_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use kubepki::inventory::Inventory;
use kubepki::plan::plan;
use nix_support::{bundle_fixture, eval_json, example_inventory, nix_instantiate, nix_str, repo};
use serde_json::Value;

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "target" | ".git") {
                nix_files(&path, out);
            }
        } else if name.ends_with(".nix") {
            out.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let mut files = Vec::new();
    nix_files(&repo(), &mut files);
    for required in [
        "flake.nix",
        "nix/package.nix",
        "nix/inventory.nix",
        "nix/bundle.nix",
        "modules/kubepki.nix",
        "modules/default.nix",
        "modules/control-plane.nix",
        "modules/worker.nix",
        "hosts/ec2-controlplane/configuration.nix",
        "hosts/laptop-old/hardware-configuration.nix",
    ] {
        assert!(
            files.contains(&repo().join(required)),
            "{required} is missing"
        );
    }
    for file in &files {
        let out = nix_instantiate()
            .arg("--parse")
            .arg(file)
            .output()
            .expect("run nix-instantiate --parse");
        assert!(
            out.status.success(),
            "{} does not parse:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `kubepki inventory --derived` on `inventory`.
fn rust_reading(inventory: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_kubepki"))
        .args(["inventory", "--derived", "--inventory"])
        .arg(inventory)
        .output()
        .expect("run kubepki inventory");
    assert!(
        out.status.success(),
        "kubepki inventory failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kubepki inventory prints JSON")
}

/// nix/inventory.nix on `inventory`, in the same shape.
fn nix_reading(inventory: &Path) -> Value {
    eval_json(&format!(
        "let i = import ./nix/inventory.nix {{ }} (/. + {}); in {{ inherit (i) spec derived; }}",
        nix_str(&inventory.display().to_string())
    ))
}

fn assert_agree(inventory: &Path) -> Value {
    let rust = rust_reading(inventory);
    let nix = nix_reading(inventory);
    assert_eq!(
        nix["spec"],
        rust["spec"],
        "the spec with defaults differs for {}",
        inventory.display()
    );
    assert_eq!(
        nix["derived"],
        rust["derived"],
        "derived values differ for {}",
        inventory.display()
    );
    rust
}

#[test]
fn nix_helpers_read_the_example_inventory_like_the_tool() {
    let rust = assert_agree(&example_inventory());
    // And both say what the owner's cluster needs.
    let d = &rust["derived"];
    assert_eq!(d["pod_mtu"], 1230);
    assert_eq!(
        d["api_server_url"],
        "https://ec2-controlplane.tailnet-ducksnest.ts.net:6443"
    );
    assert_eq!(d["first_service_ip"], "10.96.0.1");
    assert_eq!(d["cluster_dns_ip"], "10.96.0.10");
    assert_eq!(d["nodes"][0]["primary_ip"], "100.64.0.10");
    assert_eq!(
        d["workers"],
        serde_json::json!(["laptop-firebat", "laptop-ultra", "laptop-old"])
    );
}

/// The example inventory rewritten by `edit`, in a temp dir, host keys by absolute path.
fn variant(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let hosts = repo().join("hosts");
    let source = std::fs::read_to_string(example_inventory()).expect("read example");
    let mut text = edit(source);
    for node in [
        "ec2-controlplane",
        "laptop-firebat",
        "laptop-ultra",
        "laptop-old",
    ] {
        text = text.replace(
            &format!("host_key = \"{node}/"),
            &format!("host_key = \"{}/{node}/", hosts.display()),
        );
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write variant");
    path
}

/// A named edit of the example inventory's text.
type Variant = (&'static str, Box<dyn Fn(String) -> String>);

#[test]
fn nix_helpers_agree_on_every_branch_of_the_rules() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: Vec<Variant> = vec![
        // No endpoints: the URL is the first control plane's primary IP.
        (
            "no-endpoints",
            Box::new(|s| {
                s.replace(
                    "endpoints = [\n  \"ec2-controlplane.tailnet-ducksnest.ts.net\",\n  \"ec2-13-125-40-17.ap-northeast-2.compute.amazonaws.com\",\n]",
                    "endpoints = []",
                )
            }),
        ),
        // No node_ip anywhere: primary IP falls back to LAN, then VPC, then tailnet.
        (
            "no-node-ip",
            Box::new(|s| {
                s.lines()
                    .filter(|l| !l.starts_with("node_ip"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
        ),
        // Defaults: no [network.mtu], no [pki], no [calico] table.
        (
            "defaults",
            Box::new(|s| {
                let cut = |s: String, table: &str, next: &str| -> String {
                    match (s.find(table), s.find(next)) {
                        (Some(a), Some(b)) if a < b => format!("{}{}", &s[..a], &s[b..]),
                        _ => s,
                    }
                };
                let s = cut(s, "[network.mtu]", "[pki]");
                let s = cut(s, "[pki]", "[calico]");
                cut(s, "[calico]", "[[operators]]")
            }),
        ),
        // IP-in-IP over BIRD with WireGuard, and no LAN anywhere (VPC and tailnet only).
        (
            "ipip-wireguard",
            Box::new(|s| {
                s.replace(
                    "backend = \"vxlan\"",
                    "backend = \"bird\"\nwireguard = true",
                )
                .replace("vxlan_mode = \"CrossSubnet\"", "vxlan_mode = \"Never\"")
                .replace("ipip_mode = \"Never\"", "ipip_mode = \"CrossSubnet\"")
                .replace("lan = [\"192.168.0.21\"]\n", "")
                .replace("lan = [\"192.168.0.22\"]\n", "")
                .replace("lan = [\"192.168.0.23\"]\n", "")
                .replace("node_ip = \"192.168.0.2", "node_ip = \"100.64.0.2")
            }),
        ),
        // Only public addresses, and no encapsulation at all.
        (
            "public-only",
            Box::new(|s| {
                s.lines()
                    .filter(|l| !(l.starts_with("vpc = ") || l.starts_with("tailnet = ")))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .replace("lan = [", "public = [")
                    .replace("node_ip = \"100.64.0.10\"", "node_ip = \"13.125.40.17\"")
                    .replace("vxlan_mode = \"CrossSubnet\"", "vxlan_mode = \"Never\"")
            }),
        ),
        // LAN only (1500) with dual-stack pods: IPv6 VXLAN fits and is the smallest.
        (
            "dual-stack-lan",
            Box::new(|s| {
                s.lines()
                    .filter(|l| !(l.starts_with("vpc = ") || l.starts_with("tailnet = ")))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .replace("node_ip = \"100.64.0.10\"", "node_ip = \"13.125.40.17\"")
                    .replace(
                        "pod_cidrs = [\"10.244.0.0/16\"]",
                        "pod_cidrs = [\"10.244.0.0/16\", \"fd10:244::/64\"]",
                    )
            }),
        ),
        // Dual-stack service and pod CIDRs, an IPv6 endpoint and IPv6 node IPs.
        (
            "ipv6",
            Box::new(|s| {
                s.replace(
                    "service_cidrs = [\"10.96.0.0/12\"]",
                    // Written long-hand: both readings print it canonically.
                    "service_cidrs = [\"fd10:0096:0:0:0:0:0:0/108\", \"10.96.0.0/12\"]",
                )
                .replace(
                    "pod_cidrs = [\"10.244.0.0/16\"]",
                    "pod_cidrs = [\"10.244.0.0/16\", \"fd10:244::/64\"]",
                )
                .replace(
                    "\"ec2-controlplane.tailnet-ducksnest.ts.net\",\n",
                    "\"fd7a:115c:a1e0:0:0:0:0:10\",\n",
                )
                .replace(
                    "node_ip = \"100.64.0.10\"",
                    "node_ip = \"fd7a:115c:a1e0::a\"",
                )
                .replace(
                    "tailnet = [\"100.64.0.10\"]",
                    "tailnet = [\"100.64.0.10\", \"fd7a:115c:a1e0::a\"]",
                )
            }),
        ),
    ];
    let mut mtus = Vec::new();
    for (name, edit) in cases {
        let path = variant(dir.path(), name, edit);
        let rust = assert_agree(&path);
        mtus.push((name, rust["derived"]["pod_mtu"].clone()));
        if name == "no-endpoints" {
            assert_eq!(
                rust["derived"]["api_server_url"],
                "https://100.64.0.10:6443"
            );
        }
        if name == "ipv6" {
            assert_eq!(
                rust["derived"]["api_server_url"],
                "https://[fd7a:115c:a1e0::10]:6443"
            );
            assert_eq!(rust["derived"]["cluster_dns_ip"], "fd10:96::a");
            // VXLAN over IPv6 would leave 1210 < 1280 on the tailnet: IPv6 pods go unencapsulated.
            assert_eq!(rust["derived"]["pod_mtu_v6"], 1280);
        }
    }
    // Each variant took a different branch of the MTU rule.
    assert_eq!(
        mtus,
        vec![
            ("no-endpoints", Value::from(1230)),
            ("no-node-ip", Value::from(1230)),
            ("defaults", Value::from(1230)),
            // The largest overhead counts (WireGuard 60 over IP-in-IP 20), not their sum.
            ("ipip-wireguard", Value::from(1280 - 60)),
            // No link kind in use: the LAN's 1500 counts; no encapsulation.
            ("public-only", Value::from(1500)),
            ("dual-stack-lan", Value::from(1500 - 70)),
            ("ipv6", Value::from(1230)),
        ]
    );
}

#[test]
fn nix_bundle_helper_maps_every_planned_file_to_its_installed_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    bundle_fixture(dir.path());
    let inventory = Inventory::load(&example_inventory()).expect("example loads");
    let plan = plan(&inventory);
    for node in &plan.nodes {
        let nix = eval_json(&format!(
            "let b = import ./nix/bundle.nix {{ }} (/. + {}); m = b.forNode {{ node = {}; targetDir = \"/run/kubepki\"; }}; in {{ inherit (m) files kubeconfigs units; }}",
            nix_str(&dir.path().join("pki").display().to_string()),
            nix_str(&node.name),
        ));
        for file in &node.files {
            let part = serde_json::to_value(file.part).expect("part serialises");
            let part = part.as_str().expect("part is a string");
            assert_eq!(
                nix["files"][&file.material][part],
                Value::from(format!("/run/kubepki/current/{}", file.install)),
                "{} {} on {}",
                file.material,
                part,
                node.name
            );
        }
        for kubeconfig in &node.kubeconfigs {
            assert_eq!(
                nix["kubeconfigs"][&kubeconfig.name],
                Value::from(format!("/run/kubepki/current/{}", kubeconfig.install))
            );
        }
        let count: usize = nix["files"]
            .as_object()
            .expect("files")
            .values()
            .map(|parts| parts.as_object().expect("parts").len())
            .sum();
        assert_eq!(
            count,
            node.files.len(),
            "no extra or merged files on {}",
            node.name
        );
    }
    // A node the bundle does not know is named, with the fix.
    let err = nix_support::eval(&format!(
        "((import ./nix/bundle.nix {{ }} (/. + {})).forNode {{ node = \"laptop-new\"; targetDir = \"/run/kubepki\"; }}).files",
        nix_str(&dir.path().join("pki").display().to_string()),
    ))
    .expect_err("an unknown node fails");
    assert!(
        err.contains("nothing for node `laptop-new`") && err.contains("certs-recreate"),
        "{err}"
    );
}

#[test]
fn nix_bundle_helper_reads_the_committed_example_bundle() {
    let manifest = repo().join("hosts/pki/manifest.json");
    if !manifest.exists() {
        println!(
            "SKIPPED nix_bundle_helper_reads_the_committed_example_bundle: {} is not committed yet (written by `kubepki recreate`).",
            manifest.display()
        );
        return;
    }
    let inventory = Inventory::load(&example_inventory()).expect("example loads");
    let plan = plan(&inventory);
    let nix = eval_json(
        "let i = import ./nix/inventory.nix { } ./hosts/cluster.toml; b = import ./nix/bundle.nix { } i.bundleDir;
         in { cluster = b.cluster; pins = i.pins;
              nodes = builtins.mapAttrs (node: _: (b.forNode { inherit node; targetDir = \"/run/kubepki\"; }).kubeconfigs) b.manifest.nodes; }",
    );
    assert_eq!(nix["cluster"], Value::from(plan.cluster.clone()));
    for authority in ["kubernetes", "etcd", "front-proxy"] {
        assert!(
            nix["pins"][authority]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "recreate recorded no [pki.pins] {authority} in hosts/cluster.toml"
        );
    }
    for node in &plan.nodes {
        for kubeconfig in &node.kubeconfigs {
            assert_eq!(
                nix["nodes"][&node.name][&kubeconfig.name],
                Value::from(format!("/run/kubepki/current/{}", kubeconfig.install)),
                "the committed bundle disagrees with the plan for {}",
                node.name
            );
        }
    }
}

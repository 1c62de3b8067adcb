//! modules/calico.nix: it parses with Nix 2.8, and evaluated with nixpkgs' lib it wires the
//! CNI on every node and the apply oneshot on control planes, all from the inventory.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn nix_instantiate() -> Command {
    match Command::new("nix-instantiate").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!("nix-instantiate is not available: install nix-bin (see .ci/run)"),
    }
    let mut cmd = Command::new("nix-instantiate");
    cmd.current_dir(repo());
    cmd
}

#[test]
fn the_module_parses_with_nix_2_8() {
    let out = nix_instantiate()
        .args(["--parse", "modules/calico.nix"])
        .output()
        .unwrap_or_else(|e| panic!("run nix-instantiate: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A nixpkgs (or nixpkgs.lib) checkout, from NIXPKGS_LIB as in the other Nix tests.
fn nixpkgs_lib() -> Option<String> {
    match std::env::var("NIXPKGS_LIB") {
        Ok(dir) if Path::new(&dir).join("lib/default.nix").exists() => Some(dir),
        Ok(dir) => {
            panic!("NIXPKGS_LIB={dir} has no lib/default.nix; point it at a nixpkgs.lib checkout")
        }
        Err(_) => None,
    }
}

fn nix_str(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_else(|e| panic!("{e}"))
        .replace("${", "\\${")
}

fn evaluate(lib: &str, inventory: &Path, node: &str) -> Result<Value, String> {
    let expr = format!(
        "import (/. + {file}) {{ nixpkgsLib = {lib}; inventory = {inv}; node = {node}; }}",
        file = nix_str(
            &repo()
                .join("tests/nix/calico-module.nix")
                .display()
                .to_string()
        ),
        lib = nix_str(lib),
        inv = nix_str(&inventory.display().to_string()),
        node = nix_str(node),
    );
    let out = nix_instantiate()
        .args(["--eval", "--strict", "--json", "-E", &expr])
        .output()
        .unwrap_or_else(|e| panic!("run nix-instantiate: {e}"));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

#[test]
fn every_node_gets_the_cni_and_control_planes_apply_calico() {
    let Some(lib) = nixpkgs_lib() else {
        println!(
            "SKIPPED every_node_gets_the_cni_and_control_planes_apply_calico: NIXPKGS_LIB is not set. \
             Set it to a nixpkgs.lib checkout (github:nix-community/nixpkgs.lib) to evaluate modules/calico.nix."
        );
        return;
    };
    let inventory = repo().join("hosts/cluster.toml");
    let cp = evaluate(&lib, &inventory, "ec2-controlplane").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cp["failedAssertions"], serde_json::json!([]));

    let plugins = cp["cniPackages"]
        .as_array()
        .unwrap_or_else(|| panic!("{cp:#}"));
    assert_eq!(plugins.len(), 1);
    let plugins = plugins[0].as_str().unwrap_or_default();
    assert!(
        plugins.contains("/bin/calico $out/bin/calico\n"),
        "{plugins}"
    );
    assert!(
        plugins.contains("/bin/calico $out/bin/calico-ipam"),
        "{plugins}"
    );

    let rendered = cp["rendered"].as_str().unwrap_or_default();
    assert!(rendered.contains("/bin/kubepki calico"), "{rendered}");
    assert!(
        rendered.contains("-kubepki-hosts/cluster.toml"),
        "{rendered}"
    );
    assert!(
        rendered.contains("--material-dir /run/kubepki/current"),
        "{rendered}"
    );
    assert!(rendered.contains("--out $out"), "{rendered}");
    let config_dir = cp["cniConfigDir"].as_str().unwrap_or_default();
    assert!(
        config_dir.contains("/10-calico.conflist $out/10-calico.conflist"),
        "{config_dir}"
    );

    let spec: toml::Table =
        toml::from_str(&std::fs::read_to_string(&inventory).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    let sha = spec["calico"]["crds_sha256"].as_str().unwrap_or_default();
    assert_eq!(cp["crds"]["sha256"], sha);
    assert_eq!(
        cp["crds"]["url"],
        "https://raw.githubusercontent.com/projectcalico/calico/v3.30.3/manifests/crds.yaml"
    );

    let apply = &cp["apply"];
    assert_eq!(apply["type"], "oneshot");
    assert_eq!(
        apply["kubeconfig"],
        "/run/kubepki/current/super-admin.kubeconfig"
    );
    let script = apply["script"].as_str().unwrap_or_default();
    assert!(
        script.contains("until kubectl get --raw /readyz"),
        "{script}"
    );
    assert_eq!(
        script
            .matches("kubectl apply --server-side --force-conflicts")
            .count(),
        2,
        "{script}"
    );
    assert!(script.contains("calico-3.30.3-crds.yaml"), "{script}");
    assert!(
        script.find("crds.yaml") < script.find("kubepki-calico-3.30.3"),
        "CRDs first: {script}"
    );

    // A worker installs the CNI but applies nothing.
    let worker = evaluate(&lib, &inventory, "laptop-firebat").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(worker["apply"], Value::Null);
    assert_eq!(worker["cniPackages"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_control_plane_refuses_unpinned_crds() {
    let Some(lib) = nixpkgs_lib() else {
        println!("SKIPPED a_control_plane_refuses_unpinned_crds: NIXPKGS_LIB is not set.");
        return;
    };
    let source = std::fs::read_to_string(repo().join("hosts/cluster.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let unpinned: String = source
        .lines()
        .filter(|l| !l.starts_with("crds_sha256"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(unpinned, source);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let inventory = dir.path().join("cluster.toml");
    std::fs::write(&inventory, unpinned).unwrap_or_else(|e| panic!("{e}"));
    let cp = evaluate(&lib, &inventory, "ec2-controlplane").unwrap_or_else(|e| panic!("{e}"));
    let failed = cp["failedAssertions"].to_string();
    assert!(failed.contains("crds_sha256"), "{failed}");
    let worker = evaluate(&lib, &inventory, "laptop-ultra").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(worker["failedAssertions"], serde_json::json!([]));
}

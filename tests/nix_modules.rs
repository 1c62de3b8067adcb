//! The NixOS modules evaluated with nixpkgs' real `lib.evalModules`.
//!
//! Needs a nixpkgs `lib` checkout named by `NIXPKGS_LIB` (e.g. the
//! nix-community/nixpkgs.lib repository); without it the test prints why it
//! did not run. The NixOS options kubepki only sets are stubbed as free-form
//! declarations (tests/nix/nixos-stubs.nix), so what is checked is kubepki's
//! own options, its assertions, and the values the roles set.

mod nix_support;

use std::path::Path;

use nix_support::{bundle_fixture, eval, nix_str, repo};
use serde_json::Value;

fn nixpkgs_lib() -> Option<String> {
    match std::env::var("NIXPKGS_LIB") {
        Ok(dir) if Path::new(&dir).join("lib/default.nix").exists() => Some(dir),
        Ok(dir) => panic!(
            "NIXPKGS_LIB={dir} has no lib/default.nix; point it at a nixpkgs (or nixpkgs.lib) checkout"
        ),
        Err(_) => None,
    }
}

/// Evaluates kubepki's own modules for `node`; `extra` is spliced into `services.kubepki`.
fn evaluate(lib: &str, inventory: &Path, node: &str, extra: &str) -> Result<Value, String> {
    evaluate_with(lib, inventory, node, extra, false)
}

/// As [`evaluate`]; with `roles`, through modules/default.nix as the flake's hosts are.
fn evaluate_with(
    lib: &str,
    inventory: &Path,
    node: &str,
    extra: &str,
    roles: bool,
) -> Result<Value, String> {
    let expr = format!(
        "import {file} {{ nixpkgsLib = {lib}; inventory = {inv}; node = {node}; settings = {{ {extra} }}; roles = {roles}; }}",
        file = nix_str(&repo().join("tests/nix/eval-modules.nix").display().to_string()),
        lib = nix_str(lib),
        inv = nix_str(&inventory.display().to_string()),
        node = nix_str(node),
    )
    .replace("import \"", "import (/. + \"")
    .replace(".nix\" {", ".nix\") {");
    eval(&expr)
}

fn store_dir() -> String {
    nix_support::eval_json("builtins.storeDir")
        .as_str()
        .expect("storeDir is a string")
        .to_string()
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, key| {
        v.get(key)
            .unwrap_or_else(|| panic!("no `{path}` (stuck at `{key}`) in {v:#}"))
    })
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("`{path}` is not a string"))
}

#[test]
fn modules_evaluate_with_real_nixpkgs_lib() {
    let Some(lib) = nixpkgs_lib() else {
        println!(
            "SKIPPED modules_evaluate_with_real_nixpkgs_lib: NIXPKGS_LIB is not set. \
             Set it to a nixpkgs.lib checkout (github:nix-community/nixpkgs.lib) to evaluate the NixOS modules."
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let inventory = bundle_fixture(dir.path());
    let current = "/run/kubepki/current";

    // The control plane.
    let cp = evaluate(&lib, &inventory, "ec2-controlplane", "").expect("control plane evaluates");
    assert_eq!(at(&cp, "failedAssertions"), &Value::Array(vec![]), "{cp:#}");
    let api = at(&cp, "kubernetes.apiserver");
    assert_eq!(s(api, "tlsCertFile"), format!("{current}/apiserver.crt"));
    assert_eq!(s(api, "tlsKeyFile"), format!("{current}/apiserver.key"));
    assert_eq!(s(api, "clientCaFile"), format!("{current}/ca.crt"));
    assert_eq!(
        s(api, "kubeletClientCertFile"),
        format!("{current}/apiserver-kubelet-client.crt")
    );
    assert_eq!(
        s(api, "proxyClientKeyFile"),
        format!("{current}/front-proxy-client.key")
    );
    assert_eq!(s(api, "serviceAccountKeyFile"), format!("{current}/sa.pub"));
    assert_eq!(
        s(api, "serviceAccountSigningKeyFile"),
        format!("{current}/sa.key")
    );
    assert_eq!(s(api, "etcd.caFile"), format!("{current}/etcd-ca.crt"));
    assert_eq!(
        s(api, "etcd.certFile"),
        format!("{current}/apiserver-etcd-client.crt")
    );
    assert_eq!(
        at(api, "etcd.servers"),
        &serde_json::json!(["https://100.64.0.10:2379"])
    );
    assert_eq!(s(api, "serviceClusterIpRange"), "10.96.0.0/12");
    assert_eq!(s(api, "advertiseAddress"), "100.64.0.10");
    assert_eq!(at(api, "securePort"), 6443);
    let extra = s(api, "extraOpts");
    assert!(
        extra.contains(&format!(
            "--requestheader-client-ca-file={current}/front-proxy-ca.crt"
        )),
        "{extra}"
    );
    assert!(
        extra.contains(&format!(
            "--encryption-provider-config={current}/encryption-config.yaml"
        )),
        "{extra}"
    );
    assert_eq!(at(&cp, "kubernetes.easyCerts"), false);
    assert_eq!(s(&cp, "kubernetes.clusterCidr"), "10.244.0.0/16");
    assert_eq!(
        s(&cp, "kubernetes.apiserverAddress"),
        "https://ec2-controlplane.tailnet-ducksnest.ts.net:6443"
    );
    let cm = at(&cp, "kubernetes.controllerManager");
    assert_eq!(s(cm, "serviceAccountKeyFile"), format!("{current}/sa.key"));
    assert_eq!(
        s(cm, "kubeconfig.certFile"),
        format!("{current}/controller-manager.crt")
    );
    assert!(
        s(cm, "extraOpts").contains(&format!("--cluster-signing-key-file={current}/ca.key")),
        "the controller-manager signs CSRs with the CA key the plan gives it"
    );
    assert_eq!(
        s(&cp, "kubernetes.scheduler.kubeconfig.keyFile"),
        format!("{current}/scheduler.key")
    );

    let etcd = at(&cp, "etcd");
    assert_eq!(at(etcd, "enable"), true);
    assert_eq!(s(etcd, "certFile"), format!("{current}/etcd-server.crt"));
    assert_eq!(s(etcd, "peerKeyFile"), format!("{current}/etcd-peer.key"));
    assert_eq!(s(etcd, "trustedCaFile"), format!("{current}/etcd-ca.crt"));
    assert_eq!(at(etcd, "clientCertAuth"), true);
    assert_eq!(at(etcd, "peerClientCertAuth"), true);
    assert!(
        at(etcd, "listenClientUrls")
            .as_array()
            .expect("a list")
            .contains(&Value::from("https://100.64.0.10:2379")),
        "etcd listens on the node IP: {etcd:#}"
    );
    assert_eq!(cp["sysctl"]["net.ipv4.ip_nonlocal_bind"], 1);
    assert_eq!(
        at(etcd, "initialCluster"),
        &serde_json::json!(["ec2-controlplane=https://100.64.0.10:2380"])
    );

    // The activation hook: after users/groups/specialfs, pins from the inventory, restart list.
    let script = at(&cp, "activationScript");
    assert_eq!(
        at(script, "deps"),
        &serde_json::json!(["users", "groups", "specialfs"])
    );
    assert_eq!(at(script, "supportsDryActivation"), true);
    let text = s(script, "text");
    assert!(
        text.contains("dry-activate") && text.contains("--dry-run"),
        "{text}"
    );
    for needle in [
        "/bin/kubepki activate",
        // The bundle (sealed keys only) is copied into the store with the configuration.
        &format!("--bundle {}/", store_dir()),
        "-pki --node",
        "--node ec2-controlplane",
        &format!("--pin 'kubernetes=sha256:{}'", "1".repeat(64)),
        &format!("--pin 'etcd=sha256:{}'", "2".repeat(64)),
        // Both CAs of a rotation are pinned.
        &format!("--pin 'front-proxy=sha256:{}'", "3".repeat(64)),
        &format!("--pin 'front-proxy=sha256:{}'", "1".repeat(64)),
        "--identity /etc/ssh/ssh_host_rsa_key",
        "--identity /etc/ssh/ssh_host_ed25519_key",
        "--target /run/kubepki",
        "--keep 3",
        // The inventory's renewal window, for the expiry warning.
        "--renew-before-days 30",
        "--restart-list /run/nixos/activation-restart-list",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from\n{text}");
    }

    // Bootstrap RBAC oneshot on the control plane, as the super-admin.
    let bootstrap = at(&cp, "systemdServices.kubepki-bootstrap");
    assert_eq!(
        s(bootstrap, "environment.KUBECONFIG"),
        format!("{current}/super-admin.kubeconfig")
    );
    let script = s(bootstrap, "script");
    assert!(script.contains("apply --server-side"), "{script}");
    assert!(
        script
            .split_whitespace()
            .any(|w| w.ends_with("-kubepki-bootstrap.json")),
        "the bootstrap objects are applied: {script}"
    );
    let bindings: Vec<(String, String, String)> = at(&cp, "kubepki.bootstrapObjects")
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == "ClusterRoleBinding")
        .map(|i| {
            (
                i["roleRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                i["subjects"][0]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                i["subjects"][0]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    for (role, kind, name) in [
        ("cluster-admin", "Group", "kubeadm:cluster-admins"),
        (
            "system:kubelet-api-admin",
            "User",
            "kube-apiserver-kubelet-client",
        ),
        ("system:node-proxier", "User", "system:kube-proxy"),
    ] {
        assert!(
            bindings.contains(&(role.into(), kind.into(), name.into())),
            "no binding of {kind} {name} to {role} in {bindings:?}"
        );
    }
    // calico-cni's RBAC is Calico's (rendered by `kubepki calico`), never bootstrapped twice.
    assert!(
        !bindings.iter().any(|(_, _, name)| name == "calico-cni"),
        "calico-cni bound by the bootstrap too: {bindings:?}"
    );

    // A worker: kubelet and kube-proxy, no control plane, no etcd.
    let worker = evaluate(&lib, &inventory, "laptop-old", "").expect("worker evaluates");
    assert_eq!(at(&worker, "failedAssertions"), &Value::Array(vec![]));
    let kubelet = at(&worker, "kubernetes.kubelet");
    assert_eq!(s(kubelet, "nodeIp"), "192.168.0.23");
    assert_eq!(s(kubelet, "hostname"), "laptop-old");
    assert_eq!(
        at(kubelet, "clusterDns"),
        &serde_json::json!(["10.96.0.10"])
    );
    assert_eq!(s(kubelet, "clusterDomain"), "cluster.local");
    assert_eq!(
        s(kubelet, "tlsCertFile"),
        format!("{current}/kubelet-serving.crt")
    );
    assert_eq!(
        s(kubelet, "kubeconfig.keyFile"),
        format!("{current}/kubelet-client.key")
    );
    assert_eq!(
        s(kubelet, "kubeconfig.server"),
        "https://ec2-controlplane.tailnet-ducksnest.ts.net:6443"
    );
    assert!(
        kubelet
            .get("taints")
            .and_then(Value::as_object)
            .is_none_or(|t| t.is_empty()),
        "a worker is not tainted: {kubelet:#}"
    );
    assert_eq!(
        s(&worker, "kubernetes.proxy.kubeconfig.certFile"),
        format!("{current}/kube-proxy.crt")
    );
    assert!(worker["kubernetes"].get("apiserver").is_none());
    assert!(worker["etcd"].get("enable").is_none());
    assert!(worker["systemdServices"].get("kubepki-bootstrap").is_none());
    assert_eq!(at(&worker, "containerd.enable"), true);
    // The control plane is not a worker: tainted.
    assert_eq!(
        s(&cp, "kubernetes.kubelet.taints.control-plane.key"),
        "node-role.kubernetes.io/control-plane"
    );

    // systemd mode: a sysinit oneshot instead of the activation snippet.
    let sd = evaluate(&lib, &inventory, "laptop-ultra", "mode = \"systemd\";")
        .expect("systemd mode evaluates");
    assert!(at(&sd, "activationScript").is_null());
    let unit = at(&sd, "systemdServices.kubepki-activate");
    assert_eq!(at(unit, "wantedBy"), &serde_json::json!(["sysinit.target"]));
    assert_eq!(at(unit, "unitConfig.DefaultDependencies"), false);
    let exec = s(unit, "serviceConfig.ExecStart");
    assert!(
        exec.contains("--systemd") && exec.contains("--node laptop-ultra"),
        "{exec}"
    );
}

#[test]
fn modules_refuse_a_host_key_in_the_nix_store() {
    let Some(lib) = nixpkgs_lib() else {
        println!("SKIPPED modules_refuse_a_host_key_in_the_nix_store: NIXPKGS_LIB is not set.");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let inventory = bundle_fixture(dir.path());
    let out = evaluate(
        &lib,
        &inventory,
        "laptop-firebat",
        "identityPaths = [ \"/nix/store/00000000000000000000000000000000-host-key/ssh_host_ed25519_key\" ];",
    )
    .expect("evaluates");
    let failed = at(&out, "failedAssertions").as_array().expect("a list");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let message = failed[0].as_str().expect("a message");
    assert!(
        message.contains("is in the Nix store") && message.contains("Fix:"),
        "{message}"
    );
}

#[test]
fn modules_name_an_unknown_node() {
    let Some(lib) = nixpkgs_lib() else {
        println!("SKIPPED modules_name_an_unknown_node: NIXPKGS_LIB is not set.");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let inventory = bundle_fixture(dir.path());
    let err = evaluate(&lib, &inventory, "laptop-new", "").expect_err("an unknown node fails");
    assert!(
        err.contains("node `laptop-new` is not in") && err.contains("Fix:"),
        "{err}"
    );
}

#[test]
fn flake_outputs_follow_the_inventory() {
    let Some(lib) = nixpkgs_lib() else {
        println!("SKIPPED flake_outputs_follow_the_inventory: NIXPKGS_LIB is not set.");
        return;
    };
    // Only names and paths are forced: building a system needs all of nixpkgs.
    let expr = format!(
        "let
           flake = import ./flake.nix;
           lib = import (/. + {lib} + \"/lib\");
           nixpkgs = {{ inherit lib; legacyPackages = {{ }}; outPath = {lib}; }};
           outputs = flake.outputs {{ self = outputs; inherit nixpkgs; }};
         in {{
           hosts = builtins.attrNames outputs.nixosConfigurations;
           modules = builtins.mapAttrs (_: toString) outputs.nixosModules;
           apps = builtins.attrNames outputs.apps.x86_64-linux;
           checks = builtins.attrNames outputs.checks.x86_64-linux;
           packages = builtins.attrNames outputs.packages.x86_64-linux;
           shells = builtins.attrNames outputs.devShells.x86_64-linux;
         }}",
        lib = nix_str(&lib),
    );
    let out = nix_support::eval_json(&expr);
    let inventory =
        kubepki::inventory::Inventory::load(&nix_support::example_inventory()).expect("loads");
    let mut nodes: Vec<String> = inventory.nodes().iter().map(|n| n.name.clone()).collect();
    nodes.sort();
    assert_eq!(at(&out, "hosts"), &serde_json::json!(nodes));
    for node in &nodes {
        let config = repo().join(format!("hosts/{node}/configuration.nix"));
        assert!(config.exists(), "{} is missing", config.display());
    }
    for (name, file) in [
        ("default", "modules/default.nix"),
        ("control-plane", "modules/control-plane.nix"),
        ("worker", "modules/worker.nix"),
        ("kubepki", "modules/kubepki.nix"),
    ] {
        assert_eq!(
            s(&out, &format!("modules.{name}")),
            repo().join(file).display().to_string()
        );
    }
    for app in ["certs-check", "certs-plan", "certs-recreate"] {
        assert!(
            at(&out, "apps")
                .as_array()
                .expect("a list")
                .contains(&Value::from(app)),
            "no app {app}"
        );
    }
    assert_eq!(at(&out, "checks"), &serde_json::json!(["cluster", "tests"]));
    assert_eq!(
        at(&out, "packages"),
        &serde_json::json!(["default", "kubepki"])
    );
    assert_eq!(at(&out, "shells"), &serde_json::json!(["default"]));
}

#[test]
fn modules_accept_the_committed_example_bundle() {
    let Some(lib) = nixpkgs_lib() else {
        println!("SKIPPED modules_accept_the_committed_example_bundle: NIXPKGS_LIB is not set.");
        return;
    };
    if !repo().join("hosts/pki/manifest.json").exists() {
        println!(
            "SKIPPED modules_accept_the_committed_example_bundle: hosts/pki is not committed yet."
        );
        return;
    }
    let inventory = nix_support::example_inventory();
    for node in [
        "ec2-controlplane",
        "laptop-firebat",
        "laptop-ultra",
        "laptop-old",
    ] {
        let out = evaluate(&lib, &inventory, node, "").expect("evaluates");
        assert_eq!(
            at(&out, "failedAssertions"),
            &Value::Array(vec![]),
            "{node} with the committed bundle and pins"
        );
        assert!(
            s(&out, "activationScript.text").contains(&format!("--node {node}")),
            "{node}"
        );
    }
}

#[test]
fn roles_evaluate_with_calico_and_the_cache() {
    let Some(lib) = nixpkgs_lib() else {
        println!("SKIPPED roles_evaluate_with_calico_and_the_cache: NIXPKGS_LIB is not set.");
        return;
    };
    // The roles import the Calico and cache modules, written on their own branches.
    let missing: Vec<&str> = ["modules/calico.nix", "modules/cache.nix"]
        .into_iter()
        .filter(|m| !repo().join(m).exists())
        .collect();
    if !missing.is_empty() {
        println!(
            "SKIPPED roles_evaluate_with_calico_and_the_cache: {} not merged yet.",
            missing.join(", ")
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let inventory = bundle_fixture(dir.path());
    for node in ["ec2-controlplane", "laptop-firebat"] {
        let out = evaluate_with(&lib, &inventory, node, "", true).unwrap_or_else(|e| {
            panic!("{node} does not evaluate through modules/default.nix:\n{e}")
        });
        assert_eq!(
            at(&out, "failedAssertions"),
            &Value::Array(vec![]),
            "{node}"
        );
        // kubepki's wiring survives next to Calico's CNI.
        assert_eq!(
            s(&out, "kubernetes.kubelet.tlsCertFile"),
            "/run/kubepki/current/kubelet-serving.crt"
        );
        assert!(
            s(&out, "kubernetes.kubelet.cni.configDir").contains("calico"),
            "{node}: Calico provides the CNI config"
        );
        // The calico-cni RBAC comes once, from Calico's rendered manifests.
        let names: Vec<&str> = at(&out, "kubepki.bootstrapObjects")
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        assert!(!names.contains(&"calico-cni"), "{node}: {names:?}");
    }
}

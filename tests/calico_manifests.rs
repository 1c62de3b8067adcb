//! The rendered Calico manifests, read back field by field, and fed to kubectl.
//!
//! `kubectl apply --dry-run=client` still asks an API server for discovery, so
//! the kubectl checks use `--local` commands that need none: `label --local`
//! parses every document of a file as Kubernetes objects, `set env --local`
//! decodes the DaemonSet and Deployment into kubectl's typed API structs (a
//! string where an integer belongs fails there), `set subject --local` does the
//! same for the ClusterRoleBindings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kubepki::calico::resources::*;
use kubepki::calico::{self, RenderOptions, cni::ConfList};
use kubepki::inventory::Inventory;
use serde::Deserialize;
use serde::de::DeserializeOwned;

fn example() -> Inventory {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hosts/cluster.toml");
    Inventory::load(&path).unwrap_or_else(|e| panic!("example inventory: {e}"))
}

/// What the files say, parsed back from YAML/JSON text only.
struct Parsed {
    docs: BTreeMap<&'static str, Vec<serde_json::Value>>,
    conflist: serde_json::Value,
}

fn yaml_docs(text: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            let value = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("YAML document: {e}"));
            serde_json::to_value(value).unwrap_or_else(|e| panic!("YAML document to JSON: {e}"))
        })
        .collect()
}

fn typed<T: DeserializeOwned>(value: &serde_json::Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {value:#}"))
}

fn render(inventory: &Inventory, options: &RenderOptions) -> Parsed {
    let resources = calico::resources(inventory, options).unwrap_or_else(|e| panic!("{e}"));
    let files = calico::render(&resources).unwrap_or_else(|e| panic!("{e}"));
    let mut docs = BTreeMap::new();
    let mut conflist = serde_json::Value::Null;
    for file in files {
        if file.name == calico::CONFLIST_FILE {
            conflist = serde_json::from_str(&file.contents)
                .unwrap_or_else(|e| panic!("conflist JSON: {e}"));
        } else {
            docs.insert(file.name, yaml_docs(&file.contents));
        }
    }
    Parsed { docs, conflist }
}

impl Parsed {
    fn one(&self, file: &str, kind: &str) -> serde_json::Value {
        let found: Vec<_> = self.docs[file]
            .iter()
            .filter(|d| d["kind"] == kind)
            .cloned()
            .collect();
        assert_eq!(found.len(), 1, "{kind} in {file}");
        found[0].clone()
    }

    fn env(&self) -> BTreeMap<String, String> {
        let ds: DaemonSet = typed(&self.one(calico::CALICO_NODE_FILE, "DaemonSet"));
        ds.spec.template.spec.containers[0]
            .env
            .iter()
            .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
            .collect()
    }
}

#[test]
fn one_mtu_everywhere_felix_and_the_cni_read_it() {
    let parsed = render(&example(), &RenderOptions::default());
    let config: ConfigMap = typed(&parsed.one(calico::CONFIG_FILE, "ConfigMap"));
    assert_eq!(config.data["veth_mtu"], "1230");
    assert_eq!(parsed.env()["FELIX_VXLANMTU"], "1230");
    let felix = parsed.one(calico::FELIX_FILE, "FelixConfiguration");
    assert_eq!(felix["spec"]["vxlanMTU"], serde_json::json!(1230));
    let mtu = &parsed.conflist["plugins"][0]["mtu"];
    assert!(
        mtu.is_u64(),
        "the conflist mtu must be an integer, got {mtu}"
    );
    assert_eq!(mtu.as_u64(), Some(1230));
    // The copy in the ConfigMap is the same conflist.
    let in_config: serde_json::Value =
        serde_json::from_str(&config.data["cni_network_config"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(in_config, parsed.conflist);
}

#[test]
fn the_mtu_follows_the_inventory() {
    let mut inventory = example();
    inventory.spec.network.mtu.tailnet = 1400;
    let parsed = render(&inventory, &RenderOptions::default());
    let config: ConfigMap = typed(&parsed.one(calico::CONFIG_FILE, "ConfigMap"));
    assert_eq!(config.data["veth_mtu"], "1350");
    assert_eq!(parsed.env()["FELIX_VXLANMTU"], "1350");
    let felix: FelixConfiguration = typed(&parsed.one(calico::FELIX_FILE, "FelixConfiguration"));
    assert_eq!(felix.spec.vxlan_mtu, 1350);
    assert_eq!(
        parsed.conflist["plugins"][0]["mtu"],
        serde_json::json!(1350)
    );
}

#[test]
fn modes_cidrs_and_autodetection_come_from_the_inventory() {
    let inventory = example();
    let calico_spec = &inventory.spec.calico;
    let parsed = render(&inventory, &RenderOptions::default());
    let pools: Vec<IpPool> = parsed.docs[calico::IP_POOLS_FILE]
        .iter()
        .map(typed)
        .collect();
    assert_eq!(pools.len(), 1);
    let pool = &pools[0];
    assert_eq!(pool.type_meta.api_version, "crd.projectcalico.org/v1");
    assert_eq!(
        pool.spec.cidr,
        inventory.spec.network.pod_cidrs[0].to_string()
    );
    assert_eq!(pool.spec.cidr, "10.244.0.0/16");
    assert_eq!(pool.spec.vxlan_mode, "CrossSubnet");
    assert_eq!(pool.spec.ipip_mode, "Never");
    assert_eq!(pool.spec.block_size, calico_spec.block_size);
    assert!(pool.spec.nat_outgoing);
    assert_eq!(pool.spec.node_selector, "all()");

    let env = parsed.env();
    assert_eq!(env["CALICO_NETWORKING_BACKEND"], "vxlan");
    assert_eq!(env["CALICO_IPV4POOL_VXLAN"], "CrossSubnet");
    assert_eq!(env["CALICO_IPV4POOL_IPIP"], "Never");
    assert_eq!(env["CALICO_IPV4POOL_CIDR"], "10.244.0.0/16");
    assert_eq!(env["IP_AUTODETECTION_METHOD"], calico_spec.ip_autodetection);
    assert_eq!(env["IP_AUTODETECTION_METHOD"], "kubernetes-internal-ip");
    assert_eq!(env["FELIX_IPTABLESMARKMASK"], "0xff000000");
    assert_eq!(env["FELIX_IPTABLESBACKEND"], "Auto");
    assert_eq!(env["FELIX_NFTABLESMODE"], "Disabled");
    assert_eq!(env["FELIX_HEALTHENABLED"], "true");
    assert_eq!(env["DATASTORE_TYPE"], "kubernetes");
    assert_eq!(env["CALICO_MANAGE_CNI"], "false");
    assert_eq!(env["NO_DEFAULT_POOLS"], "true");

    let config: ConfigMap = typed(&parsed.one(calico::CONFIG_FILE, "ConfigMap"));
    assert_eq!(config.data["calico_backend"], "vxlan");
    assert_eq!(config.data["typha_service_name"], "none");

    let felix: FelixConfiguration = typed(&parsed.one(calico::FELIX_FILE, "FelixConfiguration"));
    assert_eq!(felix.metadata.name, "default");
    assert_eq!(felix.spec.iptables_mark_mask, 0xff00_0000);
    assert_eq!(
        felix.spec.feature_detect_override,
        "SNATFullyRandom=false,MASQFullyRandom=false"
    );
    assert_eq!(felix.spec.nftables_mode, "Disabled");
    assert!(!felix.spec.wireguard_enabled && !felix.spec.bpf_enabled && !felix.spec.ipv6_support);
    assert_eq!(felix.spec.vxlan_mtu_v6, None);
}

#[test]
fn calico_node_runs_felix_only_and_installs_no_cni() {
    let inventory = example();
    let parsed = render(&inventory, &RenderOptions::default());
    let raw = parsed.one(calico::CALICO_NODE_FILE, "DaemonSet");
    assert!(
        raw["spec"]["template"]["spec"]
            .get("initContainers")
            .is_none(),
        "{raw:#}"
    );
    let ds: DaemonSet = typed(&raw);
    let pod = &ds.spec.template.spec;
    assert!(pod.host_network);
    assert_eq!(pod.service_account_name, "calico-node");
    let node = &pod.containers[0];
    assert_eq!(node.image, inventory.spec.calico.node_image);
    assert_eq!(
        node.liveness_probe.exec.command,
        ["/bin/calico-node", "-felix-live"]
    );
    assert_eq!(
        node.readiness_probe.exec.command,
        ["/bin/calico-node", "-felix-ready"]
    );
    assert!(
        !node
            .volume_mounts
            .iter()
            .any(|m| m.mount_path.contains("cni")),
        "{:?}",
        node.volume_mounts
    );

    let deploy: Deployment = typed(&parsed.one(calico::KUBE_CONTROLLERS_FILE, "Deployment"));
    let kc = &deploy.spec.template.spec.containers[0];
    assert_eq!(kc.image, inventory.spec.calico.kube_controllers_image);
    let env: BTreeMap<_, _> = kc
        .env
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert_eq!(env["ENABLED_CONTROLLERS"], Some("node"));
    assert_eq!(deploy.spec.replicas, 1);
}

#[test]
fn rbac_binds_the_cni_user_of_the_calico_cni_certificate() {
    let parsed = render(&example(), &RenderOptions::default());
    let docs = &parsed.docs[calico::RBAC_FILE];
    let accounts: Vec<String> = docs
        .iter()
        .filter(|d| d["kind"] == "ServiceAccount")
        .map(|d| typed::<ServiceAccount>(d).metadata.name)
        .collect();
    assert_eq!(accounts, ["calico-node", "calico-kube-controllers"]);
    let roles: BTreeMap<String, ClusterRole> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .map(|d| {
            let r: ClusterRole = typed(d);
            (r.metadata.name.clone(), r)
        })
        .collect();
    assert_eq!(
        roles.keys().collect::<Vec<_>>(),
        ["calico-cni", "calico-kube-controllers", "calico-node"]
    );
    let cni_can = |resource: &str, verb: &str| {
        roles["calico-cni"]
            .rules
            .iter()
            .any(|r| r.resources.iter().any(|x| x == resource) && r.verbs.iter().any(|v| v == verb))
    };
    assert!(
        cni_can("ipamblocks", "create")
            && cni_can("pods/status", "patch")
            && cni_can("pods", "get")
    );
    // No service-account token minting: the CNI has a client certificate.
    assert!(
        !roles["calico-node"]
            .rules
            .iter()
            .any(|r| r.resources.iter().any(|x| x == "serviceaccounts/token"))
    );

    let bindings: BTreeMap<String, ClusterRoleBinding> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRoleBinding")
        .map(|d| {
            let b: ClusterRoleBinding = typed(d);
            (b.metadata.name.clone(), b)
        })
        .collect();
    let cni = &bindings["calico-cni"];
    assert_eq!(cni.role_ref.name, "calico-cni");
    assert_eq!(cni.subjects.len(), 1);
    assert_eq!(
        (cni.subjects[0].kind.as_str(), cni.subjects[0].name.as_str()),
        ("User", "calico-cni")
    );
    let node = &bindings["calico-node"];
    assert_eq!(
        (
            node.subjects[0].kind.as_str(),
            node.subjects[0].namespace.as_deref()
        ),
        ("ServiceAccount", Some("kube-system"))
    );
}

#[test]
fn the_conflist_points_at_the_activated_calico_cni_kubeconfig() {
    let parsed = render(&example(), &RenderOptions::default());
    let list: ConfList =
        serde_json::from_value(parsed.conflist.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list.name, "k8s-pod-network");
    let plugin = &parsed.conflist["plugins"][0];
    assert_eq!(plugin["type"], "calico");
    assert_eq!(
        plugin["kubernetes"]["kubeconfig"],
        "/run/kubepki/current/calico-cni.kubeconfig"
    );
    assert_eq!(plugin["ipam"]["type"], "calico-ipam");
    assert_eq!(
        plugin["ipam"]["ipv4_pools"],
        serde_json::json!(["10.244.0.0/16"])
    );
    assert_eq!(plugin["policy"]["type"], "k8s");
    assert_eq!(parsed.conflist["plugins"][1]["type"], "portmap");
    assert_eq!(
        parsed.conflist["plugins"][1]["capabilities"]["portMappings"],
        true
    );

    let elsewhere = render(
        &example(),
        &RenderOptions {
            material_dir: PathBuf::from("/var/lib/kubepki/current"),
        },
    );
    assert_eq!(
        elsewhere.conflist["plugins"][0]["kubernetes"]["kubeconfig"],
        "/var/lib/kubepki/current/calico-cni.kubeconfig"
    );
}

#[test]
fn dual_stack_over_a_1280_tailnet_leaves_ipv6_unencapsulated() {
    let mut inventory = example();
    inventory
        .spec
        .network
        .pod_cidrs
        .push("fd10:244::/64".parse().unwrap_or_else(|e| panic!("{e}")));
    let parsed = render(&inventory, &RenderOptions::default());
    let pools: Vec<IpPool> = parsed.docs[calico::IP_POOLS_FILE]
        .iter()
        .map(typed)
        .collect();
    assert_eq!(pools.len(), 2);
    assert_eq!(
        (
            pools[1].spec.cidr.as_str(),
            pools[1].spec.vxlan_mode.as_str(),
            pools[1].spec.block_size
        ),
        ("fd10:244::/64", "Never", 122)
    );
    let felix: FelixConfiguration = typed(&parsed.one(calico::FELIX_FILE, "FelixConfiguration"));
    assert_eq!(felix.spec.vxlan_mtu_v6, None);
    assert!(felix.spec.ipv6_support);
    let env = parsed.env();
    assert_eq!(env["CALICO_IPV6POOL_VXLAN"], "Never");
    assert!(!env.contains_key("FELIX_VXLANMTUV6"));
    assert_eq!(parsed.conflist["plugins"][0]["ipam"]["assign_ipv6"], "true");

    // A tailnet with room for IPv6 VXLAN (1400 - 70 = 1330) encapsulates both families.
    inventory.spec.network.mtu.tailnet = 1400;
    let parsed = render(&inventory, &RenderOptions::default());
    let pools: Vec<IpPool> = parsed.docs[calico::IP_POOLS_FILE]
        .iter()
        .map(typed)
        .collect();
    assert_eq!(pools[1].spec.vxlan_mode, "CrossSubnet");
    let felix: FelixConfiguration = typed(&parsed.one(calico::FELIX_FILE, "FelixConfiguration"));
    assert_eq!(felix.spec.vxlan_mtu_v6, Some(1330));
    assert_eq!(parsed.env()["FELIX_VXLANMTUV6"], "1330");
}

fn kubectl(args: &[&str], file: &Path) -> Output {
    let out = Command::new("kubectl")
        .args(args)
        .arg("-f")
        .arg(file)
        .env("KUBECONFIG", "/nonexistent")
        .output();
    match out {
        Ok(out) => out,
        Err(e) => panic!("cannot run kubectl ({e}): install kubectl (see .ci/run)"),
    }
}

fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn kubectl_reads_what_kubepki_calico_writes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let inventory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hosts/cluster.toml");
    let run = Command::new(env!("CARGO_BIN_EXE_kubepki"))
        .args(["calico", "-f"])
        .arg(&inventory)
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("run kubepki calico: {e}"));
    ok(&run, "kubepki calico --out");

    // The whole folder, as the NixOS oneshot applies it: kubectl takes the YAML and skips the conflist.
    let names = ok(
        &kubectl(
            &["label", "--local", "kubepki-check=ok", "-o", "name"],
            dir.path(),
        ),
        "label --local DIR",
    );
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(
        names,
        [
            "serviceaccount/calico-node",
            "serviceaccount/calico-kube-controllers",
            "clusterrole.rbac.authorization.k8s.io/calico-node",
            "clusterrole.rbac.authorization.k8s.io/calico-cni",
            "clusterrole.rbac.authorization.k8s.io/calico-kube-controllers",
            "clusterrolebinding.rbac.authorization.k8s.io/calico-node",
            "clusterrolebinding.rbac.authorization.k8s.io/calico-cni",
            "clusterrolebinding.rbac.authorization.k8s.io/calico-kube-controllers",
            "configmap/calico-config",
            "felixconfiguration.crd.projectcalico.org/default",
            "ippool.crd.projectcalico.org/default-ipv4-ippool",
            "daemonset.apps/calico-node",
            "deployment.apps/calico-kube-controllers",
        ]
    );

    // Typed decoding of the workloads by kubectl's own API types.
    let env = ok(
        &kubectl(
            &["set", "env", "--local", "--list"],
            &dir.path().join(calico::CALICO_NODE_FILE),
        ),
        "set env calico-node",
    );
    for line in [
        "FELIX_VXLANMTU=1230",
        "CALICO_IPV4POOL_VXLAN=CrossSubnet",
        "IP_AUTODETECTION_METHOD=kubernetes-internal-ip",
        "# NODENAME from field path spec.nodeName",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} not in:\n{env}");
    }
    let env = ok(
        &kubectl(
            &["set", "env", "--local", "--list"],
            &dir.path().join(calico::KUBE_CONTROLLERS_FILE),
        ),
        "set env kube-controllers",
    );
    assert!(
        env.lines().any(|l| l == "ENABLED_CONTROLLERS=node"),
        "{env}"
    );
    let image = ok(
        &kubectl(
            &[
                "set",
                "image",
                "--local",
                "-o",
                "jsonpath={.spec.template.spec.hostNetwork} {.spec.template.spec.containers[0].livenessProbe.exec.command}",
                "calico-node=probe",
            ],
            &dir.path().join(calico::CALICO_NODE_FILE),
        ),
        "set image calico-node",
    );
    assert!(
        image.starts_with("true ") && image.contains("-felix-live"),
        "{image}"
    );

    // The bindings through kubectl's typed RBAC structs.
    let resources =
        calico::resources(&example(), &RenderOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let bindings: String = resources
        .cluster_role_bindings
        .iter()
        .map(|b| {
            format!(
                "---\n{}",
                serde_yaml::to_string(b).unwrap_or_else(|e| panic!("{e}"))
            )
        })
        .collect();
    let file = dir.path().join("bindings.yaml");
    std::fs::write(&file, bindings).unwrap_or_else(|e| panic!("{e}"));
    let subjects = ok(
        &kubectl(
            &[
                "set",
                "subject",
                "--local",
                "--group=kubepki-check",
                "-o",
                "jsonpath={.subjects[0].kind}:{.subjects[0].name} ",
            ],
            &file,
        ),
        "set subject",
    );
    assert!(subjects.contains("User:calico-cni"), "{subjects}");
}

#[test]
fn an_unparsable_mark_mask_stops_the_render_with_a_fix() {
    let mut inventory = example();
    inventory.spec.calico.iptables_mark_mask = "0xzz".into();
    let error = match calico::resources(&inventory, &RenderOptions::default()) {
        Ok(_) => panic!("rendered with mark mask 0xzz"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("iptables_mark_mask") && error.contains("Fix:"),
        "{error}"
    );
}

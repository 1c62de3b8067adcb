//! kubectl reads every kubeconfig kubepki renders and completes a real mutual-TLS handshake.
//!
//! Node-local kubeconfigs are rendered with `kubepki::kubeconfig` into a temp
//! dir holding each node's material (decrypted with that node's own test host
//! key by Go `age`); the operator's comes from `kubepki kubeconfig`. kubectl
//! then talks to a local TLS server that presents the apiserver certificate
//! and requires a client certificate from the Kubernetes CA: reached as
//! `127.0.0.1` and as `kubernetes.default.svc`, refusing an etcd-CA client
//! certificate, and refused by kubectl under a name the certificate lacks. The
//! same stand-in serves a kubelet's serving certificate to the apiserver's
//! kubelet client certificate.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::tls::{BODY, TlsServer};
use common::{ExampleCluster, assert_success, require_tool, stderr, stdout};
use kubepki::kubeconfig::{SelfContained, render_node_local, render_self_contained};
use kubepki::plan::Plan;

const CONTROL_PLANE: &str = "ec2-controlplane";

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut full = vec!["--kubeconfig", kubeconfig.to_str().expect("utf-8 path")];
    full.extend_from_slice(args);
    // No cache or config outside the temp dir.
    let home = kubeconfig.parent().expect("kubeconfig in a folder");
    require_tool("kubectl");
    std::process::Command::new("kubectl")
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .args(full)
        .output()
        .expect("run kubectl")
}

/// `kubectl config view --raw --flatten` as JSON: the referenced files, read and embedded by kubectl.
fn flattened(kubeconfig: &Path) -> serde_json::Value {
    let output = kubectl(
        kubeconfig,
        &["config", "view", "--raw", "--flatten", "-o", "json"],
    );
    assert_success(&output, "kubectl config view --raw --flatten");
    serde_json::from_slice(&output.stdout).expect("kubectl prints JSON")
}

fn base64_field(value: &serde_json::Value) -> Vec<u8> {
    use base64::Engine as _;
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

/// A bundle recreated from the example cluster, with each node's material installed.
struct Installed {
    cluster: ExampleCluster,
    plan: Plan,
}

impl Installed {
    /// A fresh bundle made by `kubepki recreate`.
    fn new() -> Installed {
        let cluster = ExampleCluster::copy();
        cluster.recreate();
        Self::install(cluster)
    }

    /// The example bundle shipped in the repository, as a newcomer finds it.
    fn shipped() -> Installed {
        Self::install(ExampleCluster::copy_with_bundle())
    }

    fn install(cluster: ExampleCluster) -> Installed {
        require_tool("age");
        let plan = kubepki::plan::plan(&cluster.load());
        for node in &plan.nodes {
            cluster.install_node(
                &plan,
                &node.name,
                &cluster.root().join("run").join(&node.name),
            );
        }
        Installed { cluster, plan }
    }

    fn node_dir(&self, node: &str) -> PathBuf {
        self.cluster.root().join("run").join(node)
    }

    fn read(&self, node: &str, file: &str) -> Vec<u8> {
        fs::read(self.node_dir(node).join(file)).expect("read installed file")
    }

    /// The apiserver's TLS front door: its serving certificate, and the Kubernetes CA for clients.
    fn apiserver(&self) -> TlsServer {
        TlsServer::start(
            &self.read(CONTROL_PLANE, "apiserver.crt"),
            &self.read(CONTROL_PLANE, "apiserver.key"),
            &self.read(CONTROL_PLANE, "ca.crt"),
        )
    }

    /// `kubepki kubeconfig <user>` with the operator's identity, written into the temp dir.
    fn operator_kubeconfig(&self, user: &str, extra: &[&str]) -> PathBuf {
        let inventory = self.cluster.inventory();
        let identity = common::operator_key();
        let mut args = vec![
            "kubeconfig",
            user,
            "-f",
            inventory.to_str().expect("utf-8"),
            "-i",
            identity.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(extra);
        let output = self.cluster.kubepki(&args);
        assert_success(&output, "kubepki kubeconfig");
        let dir = self.cluster.root().join("operator");
        fs::create_dir_all(&dir).expect("operator dir");
        let path = dir.join(format!("{user}{}.kubeconfig", extra.len()));
        fs::write(&path, &output.stdout).expect("write kubeconfig");
        path
    }
}

#[test]
fn every_node_local_kubeconfig_resolves_to_the_installed_material_and_authenticates() {
    let installed = Installed::new();
    let server = installed.apiserver();
    let local_url = format!("https://127.0.0.1:{}", server.port);
    let mut expected_clients = Vec::new();
    let mut checked = 0;
    for node in &installed.plan.nodes {
        let dir = installed.node_dir(&node.name);
        for plan in &node.kubeconfigs {
            let text = render_node_local(plan, &installed.plan.cluster, &dir);
            assert!(!text.contains("-data:"), "node-local kubeconfig holds data");
            let path = dir.join(&plan.install);
            fs::write(&path, &text).expect("write kubeconfig");

            let view = flattened(&path);
            let context = format!("{}@{}", plan.user, installed.plan.cluster);
            assert_eq!(
                view["current-context"],
                context.as_str(),
                "{}",
                path.display()
            );
            let cluster = &view["clusters"][0];
            assert_eq!(cluster["name"], installed.plan.cluster.as_str());
            assert_eq!(
                cluster["cluster"]["server"],
                "https://ec2-controlplane.tailnet-ducksnest.ts.net:6443"
            );
            assert_eq!(
                base64_field(&cluster["cluster"]["certificate-authority-data"]),
                installed.read(&node.name, "ca.crt")
            );
            let user = &view["users"][0];
            assert_eq!(user["name"], plan.user.as_str());
            assert_eq!(
                base64_field(&user["user"]["client-certificate-data"]),
                installed.read(&node.name, &plan.cert)
            );
            assert_eq!(
                base64_field(&user["user"]["client-key-data"]),
                installed.read(&node.name, &plan.key)
            );

            // And the credentials work: a mutual-TLS request as this user.
            let output = kubectl(&path, &["--server", &local_url, "get", "--raw", "/"]);
            assert_success(
                &output,
                &format!("kubectl get --raw / with {}", path.display()),
            );
            assert_eq!(stdout(&output), BODY);
            expected_clients.push(plan.user.clone());
            checked += 1;
        }
    }
    // kubelet, kube-proxy, calico-cni on four nodes; controller-manager, scheduler, admin,
    // super-admin on the control plane.
    assert_eq!(checked, 4 * 3 + 4, "kubeconfigs checked");
    assert_eq!(server.seen().client_runs(), expected_clients);
    assert!(server.seen().refusals.is_empty(), "{:?}", server.seen());
    assert!(
        expected_clients.contains(&"system:node:laptop-old".to_string()),
        "the RSA-keyed node's kubelet authenticated too"
    );
}

#[test]
fn the_operator_admin_kubeconfig_reaches_the_apiserver_by_ip_and_by_service_name() {
    let installed = Installed::new();
    let server = installed.apiserver();
    let before = installed.cluster.snapshot();
    let admin = installed.operator_kubeconfig("admin", &[]);
    let after = installed.cluster.snapshot();
    // Only the file this test wrote from stdout is new: kubepki itself wrote nothing.
    let mut new: Vec<_> = after
        .0
        .keys()
        .filter(|k| !before.0.contains_key(*k))
        .collect();
    new.sort();
    assert_eq!(
        new,
        vec![
            Path::new("operator"),
            Path::new("operator/admin0.kubeconfig")
        ]
    );

    let view = flattened(&admin);
    assert_eq!(view["current-context"], "kubernetes-admin@ducksnest");
    assert_eq!(
        view["clusters"][0]["cluster"]["server"],
        "https://ec2-controlplane.tailnet-ducksnest.ts.net:6443"
    );
    assert_eq!(view["users"][0]["name"], "kubernetes-admin");
    assert_eq!(
        base64_field(&view["clusters"][0]["cluster"]["certificate-authority-data"]),
        fs::read(installed.cluster.bundle().join("ca/kubernetes.crt")).expect("trust bundle")
    );
    assert_eq!(
        base64_field(&view["users"][0]["user"]["client-certificate-data"]),
        fs::read(installed.cluster.bundle().join("cluster/admin.crt")).expect("admin cert")
    );
    // The key is the admin key: the control plane (which also holds it) decrypted the same bytes.
    assert_eq!(
        base64_field(&view["users"][0]["user"]["client-key-data"]),
        installed.read(CONTROL_PLANE, "admin.key")
    );

    let local_url = format!("https://127.0.0.1:{}", server.port);
    // 127.0.0.1 is a SAN of the apiserver certificate.
    let by_ip = kubectl(&admin, &["--server", &local_url, "get", "--raw", "/"]);
    assert_success(&by_ip, "kubectl get --raw / by IP");
    assert_eq!(stdout(&by_ip), BODY);
    // kubernetes.default.svc is what pods use.
    let by_name = kubectl(
        &admin,
        &[
            "--server",
            &local_url,
            "--tls-server-name",
            "kubernetes.default.svc",
            "get",
            "--raw",
            "/",
        ],
    );
    assert_success(&by_name, "kubectl get --raw / as kubernetes.default.svc");
    assert_eq!(stdout(&by_name), BODY);
    // `--server` of kubepki itself puts the URL into the kubeconfig.
    let pointed = installed.operator_kubeconfig("admin", &["--server", &local_url]);
    assert_eq!(
        flattened(&pointed)["clusters"][0]["cluster"]["server"],
        local_url.as_str()
    );
    let direct = kubectl(&pointed, &["get", "--raw", "/"]);
    assert_success(
        &direct,
        "kubectl get --raw / with kubepki kubeconfig --server",
    );

    let seen = server.seen();
    assert_eq!(seen.client_runs(), vec!["kubernetes-admin"], "{seen:?}");
    assert!(seen.refusals.is_empty(), "{seen:?}");
}

#[test]
fn the_super_admin_kubeconfig_is_the_break_glass_identity() {
    let installed = Installed::new();
    let server = installed.apiserver();
    let local_url = format!("https://127.0.0.1:{}", server.port);
    let super_admin = installed.operator_kubeconfig("super-admin", &["--server", &local_url]);
    let view = flattened(&super_admin);
    assert_eq!(view["users"][0]["name"], "kubernetes-super-admin");
    let output = kubectl(&super_admin, &["get", "--raw", "/"]);
    assert_success(&output, "kubectl get --raw / as super-admin");
    assert_eq!(server.seen().client_runs(), vec!["kubernetes-super-admin"]);
}

#[test]
fn the_apiserver_refuses_a_client_certificate_from_the_etcd_ca() {
    let installed = Installed::new();
    let server = installed.apiserver();
    // A valid certificate, from the wrong CA: the apiserver's own etcd client credentials.
    let dir = installed.node_dir(CONTROL_PLANE);
    let kubeconfig = render_self_contained(&SelfContained {
        cluster_name: &installed.plan.cluster,
        server: &format!("https://127.0.0.1:{}", server.port),
        user: "kube-apiserver-etcd-client",
        ca_pem: &installed.read(CONTROL_PLANE, "ca.crt"),
        cert_pem: &installed.read(CONTROL_PLANE, "apiserver-etcd-client.crt"),
        key_pem: &installed.read(CONTROL_PLANE, "apiserver-etcd-client.key"),
    });
    let path = dir.join("etcd-client-as-kubernetes.kubeconfig");
    fs::write(&path, kubeconfig.as_bytes()).expect("write kubeconfig");
    let output = kubectl(&path, &["get", "--raw", "/"]);
    assert!(
        !output.status.success(),
        "kubectl succeeded with an etcd-CA client certificate:\n{}",
        stdout(&output)
    );
    assert!(!stdout(&output).contains(BODY));
    let seen = server.seen();
    assert!(seen.clients.is_empty(), "{seen:?}");
    assert!(
        !seen.refusals.is_empty(),
        "the server never refused; kubectl: {}",
        stderr(&output)
    );
    assert!(
        seen.refusals.iter().all(|r| r.contains("UnknownIssuer")),
        "the server refused for another reason: {seen:?}"
    );
    assert!(
        stderr(&output).contains("tls: unknown certificate authority"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn kubectl_refuses_a_server_name_the_apiserver_certificate_lacks() {
    let installed = Installed::new();
    let server = installed.apiserver();
    let local_url = format!("https://127.0.0.1:{}", server.port);
    let admin = installed.operator_kubeconfig("admin", &[]);
    let output = kubectl(
        &admin,
        &[
            "--server",
            &local_url,
            "--tls-server-name",
            "kubernetes.example.org",
            "get",
            "--raw",
            "/",
        ],
    );
    assert!(
        !output.status.success(),
        "kubectl trusted a name not in the SANs"
    );
    let message = stderr(&output);
    assert!(
        message.contains("x509: certificate is valid for")
            && message.contains("not kubernetes.example.org"),
        "{message}"
    );
    assert!(server.seen().clients.is_empty());
}

#[test]
fn kubepki_kubeconfig_refuses_an_identity_that_does_not_hold_the_admin_key() {
    let installed = Installed::new();
    let inventory = installed.cluster.inventory();
    let worker_key = common::host_key("laptop-firebat");
    let before = installed.cluster.snapshot();
    let output = installed.cluster.kubepki(&[
        "kubeconfig",
        "admin",
        "-f",
        inventory.to_str().expect("utf-8"),
        "-i",
        worker_key.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).is_empty(),
        "printed something: {}",
        stdout(&output)
    );
    let message = stderr(&output);
    assert!(
        message.contains("cluster/admin.key.age") && message.contains("Fix: "),
        "{message}"
    );
    assert!(
        before == installed.cluster.snapshot(),
        "kubepki kubeconfig wrote a file"
    );
}

#[test]
fn kubepki_kubeconfig_refuses_a_plain_http_server_before_asking_for_a_key() {
    let cluster = ExampleCluster::copy();
    let inventory = cluster.inventory();
    // No bundle and no identity: the URL is checked first.
    let output = cluster.kubepki(&[
        "kubeconfig",
        "admin",
        "-f",
        inventory.to_str().expect("utf-8"),
        "--server",
        "http://127.0.0.1:6443",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    assert_eq!(
        stderr(&output).trim_end(),
        "kubepki: --server `http://127.0.0.1:6443` is not an https:// URL. Fix: give the API server as https://HOST:PORT, e.g. https://127.0.0.1:6443."
    );
}

#[test]
fn kubepki_kubeconfig_says_to_run_recreate_when_there_is_no_bundle() {
    let cluster = ExampleCluster::copy();
    let inventory = cluster.inventory();
    let identity = common::operator_key();
    let output = cluster.kubepki(&[
        "kubeconfig",
        "super-admin",
        "-f",
        inventory.to_str().expect("utf-8"),
        "-i",
        identity.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    let expected = format!(
        "kubepki: cannot read {}: No such file or directory (os error 2). Fix: run `kubepki recreate` to write the bundle, or check `pki.bundle` in the inventory.",
        cluster.bundle().join("ca/kubernetes.crt").display()
    );
    assert_eq!(stderr(&output).trim_end(), expected);
}

#[test]
fn the_apiserver_reaches_a_kubelet_with_its_kubelet_client_certificate() {
    // kube-apiserver -> kubelet: the kubelet serves its kubelet-serving certificate and trusts
    // the Kubernetes CA for clients; the apiserver presents apiserver-kubelet-client and checks
    // the kubelet against the CA (`--kubelet-certificate-authority`) under the node's name.
    let installed = Installed::new();
    let worker = "laptop-firebat";
    let kubelet = TlsServer::start(
        &installed.read(worker, "kubelet-serving.crt"),
        &installed.read(worker, "kubelet-serving.key"),
        &installed.read(worker, "ca.crt"),
    );
    let kubeconfig = render_self_contained(&SelfContained {
        cluster_name: &installed.plan.cluster,
        server: &format!("https://127.0.0.1:{}", kubelet.port),
        user: "kube-apiserver-kubelet-client",
        ca_pem: &installed.read(CONTROL_PLANE, "ca.crt"),
        cert_pem: &installed.read(CONTROL_PLANE, "apiserver-kubelet-client.crt"),
        key_pem: &installed.read(CONTROL_PLANE, "apiserver-kubelet-client.key"),
    });
    let path = installed
        .node_dir(CONTROL_PLANE)
        .join("to-kubelet.kubeconfig");
    fs::write(&path, kubeconfig.as_bytes()).expect("write kubeconfig");
    for name in [worker, "laptop-firebat.tailnet-ducksnest.ts.net"] {
        let output = kubectl(&path, &["--tls-server-name", name, "get", "--raw", "/"]);
        assert_success(&output, &format!("kubectl to the kubelet as {name}"));
        assert_eq!(stdout(&output), BODY);
    }
    // Another node's name is not in this kubelet's certificate.
    let output = kubectl(
        &path,
        &["--tls-server-name", "laptop-ultra", "get", "--raw", "/"],
    );
    assert!(
        !output.status.success(),
        "laptop-firebat's kubelet passed as laptop-ultra"
    );
    assert_eq!(
        kubelet.seen().client_runs(),
        vec!["kube-apiserver-kubelet-client"]
    );
}

#[test]
fn the_shipped_example_bundle_works_with_kubectl() {
    let installed = Installed::shipped();
    let server = installed.apiserver();
    let local_url = format!("https://127.0.0.1:{}", server.port);
    let admin = installed.operator_kubeconfig("admin", &["--server", &local_url]);
    let output = kubectl(&admin, &["get", "--raw", "/"]);
    assert_success(
        &output,
        "kubectl with the shipped bundle's admin kubeconfig",
    );
    assert_eq!(stdout(&output), BODY);
    let kubelet = &installed
        .plan
        .node("laptop-old")
        .expect("laptop-old in the plan")
        .kubeconfigs[0];
    let dir = installed.node_dir("laptop-old");
    let path = dir.join(&kubelet.install);
    fs::write(
        &path,
        render_node_local(kubelet, &installed.plan.cluster, &dir),
    )
    .expect("write kubeconfig");
    let output = kubectl(&path, &["--server", &local_url, "get", "--raw", "/"]);
    assert_success(&output, "kubectl with laptop-old's kubelet kubeconfig");
    assert_eq!(
        server.seen().client_runs(),
        vec!["kubernetes-admin", "system:node:laptop-old"]
    );
}

//! The generated etcd certificates work in a real etcd, and only for etcd.
//!
//! Two etcd members run on loopback with the control plane's etcd-server and
//! etcd-peer certificates, `--client-cert-auth` and `--peer-client-cert-auth`
//! against the etcd CA. The API server's etcd client certificate writes and
//! reads a key (replicated over the mutually authenticated peer link); a
//! certificate from the Kubernetes CA is refused, which is why etcd has its
//! own CA, and it cannot pose as a peer either. The keys are decrypted with
//! the control plane's test host key by the Go `age` CLI, into the test's
//! temp dir only.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::tls::{self as tls_client, ClientIdentity};
use common::{
    ExampleCluster, KillOnDrop, assert_success, free_ports, require_tool, stderr, stdout,
};

const NODE: &str = "ec2-controlplane";

/// One etcd member listening on loopback, killed on drop.
struct Member {
    client_url: String,
    log: PathBuf,
    _process: KillOnDrop,
}

fn start_member(
    name: &str,
    work: &Path,
    tls: &Path,
    client_port: u16,
    peer_port: u16,
    initial_cluster: &str,
) -> Member {
    require_tool("etcd");
    let file = |f: &str| tls.join(f).to_str().expect("utf-8 path").to_string();
    let client_url = format!("https://127.0.0.1:{client_port}");
    let peer_url = format!("https://127.0.0.1:{peer_port}");
    let data = work.join(format!("{name}.etcd"));
    let log = work.join(format!("{name}.log"));
    let log_file = fs::File::create(&log).expect("create etcd log");
    let child = Command::new("etcd")
        .args(["--name", name])
        .args(["--data-dir", data.to_str().expect("utf-8 path")])
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", initial_cluster])
        .args(["--initial-cluster-state", "new"])
        .args(["--initial-cluster-token", "kubepki-test"])
        .args(["--cert-file", &file("etcd-server.crt")])
        .args(["--key-file", &file("etcd-server.key")])
        .args(["--trusted-ca-file", &file("etcd-ca.crt")])
        .arg("--client-cert-auth")
        .args(["--peer-cert-file", &file("etcd-peer.crt")])
        .args(["--peer-key-file", &file("etcd-peer.key")])
        .args(["--peer-trusted-ca-file", &file("etcd-ca.crt")])
        .arg("--peer-client-cert-auth")
        .args(["--logger", "zap", "--log-outputs", "stderr"])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start etcd");
    Member {
        client_url,
        log,
        _process: KillOnDrop(child),
    }
}

/// `etcdctl` against `endpoint` with the given client certificate (install names in `tls`).
fn etcdctl(tls: &Path, endpoint: &str, client: &str, args: &[&str]) -> Output {
    require_tool("etcdctl");
    let file = |f: &str| tls.join(f).to_str().expect("utf-8 path").to_string();
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint])
        .args(["--cacert", &file("etcd-ca.crt")])
        .args(["--cert", &file(&format!("{client}.crt"))])
        .args(["--key", &file(&format!("{client}.key"))])
        .args(["--dial-timeout", "3s", "--command-timeout", "5s"])
        .args(args)
        .output()
        .expect("run etcdctl")
}

fn wait_healthy(tls: &Path, member: &Member) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = etcdctl(
            tls,
            &member.client_url,
            "etcd-healthcheck-client",
            &["endpoint", "health"],
        );
        if output.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "etcd at {} did not become healthy:\n{}\netcd log:\n{}",
            member.client_url,
            stderr(&output),
            fs::read_to_string(&member.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn etcd_serves_the_apiserver_client_and_refuses_a_kubernetes_ca_client() {
    require_tool("age");
    let cluster = ExampleCluster::copy();
    cluster.recreate();
    let plan = kubepki::plan::plan(&cluster.load());
    // Everything the control plane gets (etcd certs, the apiserver's etcd client), decrypted
    // with its own host key; plus the admin credentials, which it also holds.
    let tls = cluster.root().join("run/ec2-controlplane");
    cluster.install_node(&plan, NODE, &tls);
    for f in [
        "etcd-ca.crt",
        "etcd-server.key",
        "etcd-peer.key",
        "apiserver-etcd-client.key",
        "etcd-healthcheck-client.key",
        "admin.key",
    ] {
        assert!(tls.join(f).is_file(), "{f} installed for {NODE}");
    }

    let work = cluster.root().join("etcd");
    fs::create_dir_all(&work).expect("etcd work dir");
    let ports = free_ports(4);
    let initial_cluster = format!(
        "{NODE}=https://127.0.0.1:{},{NODE}-2=https://127.0.0.1:{}",
        ports[1], ports[3]
    );
    // Both members use the control plane's certificates: peers authenticate each other with
    // the etcd-peer certificate, which must be valid for serverAuth and clientAuth.
    let first = start_member(NODE, &work, &tls, ports[0], ports[1], &initial_cluster);
    let second = start_member(
        &format!("{NODE}-2"),
        &work,
        &tls,
        ports[2],
        ports[3],
        &initial_cluster,
    );
    wait_healthy(&tls, &first);
    wait_healthy(&tls, &second);

    let put = etcdctl(
        &tls,
        &first.client_url,
        "apiserver-etcd-client",
        &["put", "/registry/kubepki-test", "sealed-and-delivered"],
    );
    assert_success(
        &put,
        "etcdctl put with the apiserver-etcd-client certificate",
    );
    assert_eq!(stdout(&put).trim(), "OK");

    // Read it back from the other member: the write crossed the peer link.
    let get = etcdctl(
        &tls,
        &second.client_url,
        "apiserver-etcd-client",
        &["get", "/registry/kubepki-test", "--print-value-only"],
    );
    assert_success(
        &get,
        "etcdctl get with the apiserver-etcd-client certificate",
    );
    assert_eq!(stdout(&get).trim(), "sealed-and-delivered");

    // The admin certificate is perfectly valid, but for the Kubernetes CA: etcd must refuse it.
    let unknown_authority = "certificate signed by unknown authority";
    let log_before = fs::read_to_string(&first.log).expect("read etcd log");
    assert!(!log_before.contains(unknown_authority), "{log_before}");
    let refused = etcdctl(
        &tls,
        &first.client_url,
        "admin",
        &["get", "/registry/kubepki-test", "--print-value-only"],
    );
    assert!(
        !refused.status.success(),
        "etcd accepted a Kubernetes-CA client certificate:\n{}",
        stdout(&refused)
    );
    assert!(
        !stdout(&refused).contains("sealed-and-delivered"),
        "the value leaked to a Kubernetes-CA client"
    );
    let log = fs::read_to_string(&first.log).expect("read etcd log");
    assert!(
        log.contains(unknown_authority),
        "etcd's log does not show the refused client certificate:\n{log}"
    );
}

#[test]
fn the_etcd_peer_port_admits_the_peer_certificate_and_refuses_a_kubernetes_ca_one() {
    require_tool("age");
    let cluster = ExampleCluster::copy();
    cluster.recreate();
    let plan = kubepki::plan::plan(&cluster.load());
    let tls = cluster.root().join("run/ec2-controlplane");
    cluster.install_node(&plan, NODE, &tls);
    let work = cluster.root().join("etcd");
    fs::create_dir_all(&work).expect("etcd work dir");
    let ports = free_ports(2);
    let member = start_member(
        NODE,
        &work,
        &tls,
        ports[0],
        ports[1],
        &format!("{NODE}=https://127.0.0.1:{}", ports[1]),
    );
    wait_healthy(&tls, &member);

    let read = |f: &str| fs::read(tls.join(f)).expect("read installed file");
    let ca = read("etcd-ca.crt");
    // Another member would present its etcd-peer certificate: etcd lists its members to it.
    let (peer_cert, peer_key) = (read("etcd-peer.crt"), read("etcd-peer.key"));
    let peer = ClientIdentity {
        cert_pem: &peer_cert,
        key_pem: &peer_key,
    };
    let members = tls_client::get(ports[1], &ca, &peer, "/members")
        .unwrap_or_else(|e| panic!("the peer certificate was refused on the peer port: {e}"));
    assert!(members.starts_with("HTTP/1.1 200"), "{members}");
    assert!(
        members.contains(&format!("\"name\":\"{NODE}\"")),
        "{members}"
    );

    // A node's kubelet certificate is from the Kubernetes CA: it cannot pose as an etcd peer.
    let (kubelet_cert, kubelet_key) = (read("kubelet-client.crt"), read("kubelet-client.key"));
    let kubelet = ClientIdentity {
        cert_pem: &kubelet_cert,
        key_pem: &kubelet_key,
    };
    let refused = tls_client::get(ports[1], &ca, &kubelet, "/members");
    match refused {
        Err(alert) => assert!(
            alert.contains("BadCertificate"),
            "refused for another reason: {alert}"
        ),
        Ok(response) => panic!("etcd's peer port answered a Kubernetes-CA client: {response}"),
    }
}

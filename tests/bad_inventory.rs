//! A bad inventory is refused before anything is written, with a message that says where
//! (file:line:column and field path), what is wrong, and how to fix it.
//!
//! Each test breaks one thing in a private copy of the example cluster, runs
//! `kubepki recreate` on it, and checks the exact parts of the message, the
//! exit status, and that the folder tree is byte-for-byte what it was.

mod common;

use std::fs;

use base64::Engine as _;
use common::{ExampleCluster, assert_success, require_tool, stderr};

/// Where the message must point and what it must say.
struct Expected<'a> {
    position: (usize, usize),
    field: &'a str,
    problem: &'a str,
    fix: &'a str,
}

/// Runs `kubepki recreate` on the broken copy and checks the message, the exit code and that
/// nothing under the temp dir changed.
fn assert_refused(cluster: &ExampleCluster, expected: &Expected<'_>) {
    let before = cluster.snapshot();
    let inventory = cluster.inventory();
    let output = recreate(cluster);
    let after = cluster.snapshot();
    let message = stderr(&output);

    assert_eq!(
        output.status.code(),
        Some(1),
        "recreate must fail on a bad inventory; stderr:\n{message}"
    );
    let (line, column) = expected.position;
    let location = format!(
        "kubepki: {}:{line}:{column}: {}: ",
        inventory.display(),
        expected.field
    );
    let reported = message
        .lines()
        .find(|l| l.starts_with(&location))
        .unwrap_or_else(|| panic!("no line starting with {location:?} in:\n{message}"));
    let (problem, fix) = reported
        .split_once(" Fix: ")
        .unwrap_or_else(|| panic!("no \" Fix: \" in {reported:?}"));
    assert_eq!(&problem[location.len()..], expected.problem, "problem");
    assert_eq!(fix, expected.fix, "fix");
    assert!(
        before == after,
        "recreate wrote to {} although the inventory is bad",
        cluster.root().display()
    );
    assert!(!cluster.bundle().exists(), "no bundle folder may appear");
}

fn recreate(cluster: &ExampleCluster) -> std::process::Output {
    let inventory = cluster.inventory();
    let identity = common::operator_key();
    cluster.kubepki(&[
        "recreate",
        "-f",
        inventory.to_str().expect("utf-8 temp path"),
        "-i",
        identity.to_str().expect("utf-8 repo path"),
    ])
}

#[test]
fn duplicate_node_names_are_refused() {
    let cluster = ExampleCluster::copy();
    cluster.replace("name = \"laptop-ultra\"", "name = \"laptop-firebat\"");
    assert_refused(
        &cluster,
        &Expected {
            position: cluster.position("name = \"laptop-firebat\"", 1, "\"laptop-firebat\""),
            field: "nodes[2].name",
            problem: "node `laptop-firebat` is declared twice.",
            fix: "give each node a unique name or remove one of them.",
        },
    );
}

#[test]
fn an_address_that_is_not_an_ip_is_refused() {
    let cluster = ExampleCluster::copy();
    cluster.replace("lan = [\"192.168.0.22\"]", "lan = [\"192.168.0.300\"]");
    assert_refused(
        &cluster,
        &Expected {
            position: cluster.position("192.168.0.300", 0, "\"192.168.0.300\""),
            field: "nodes[2].addresses.lan[0]",
            problem: "`192.168.0.300` is not a valid IP address.",
            fix: "write an IPv4 address as four numbers from 0 to 255 (e.g. 192.168.0.22), or an IPv6 address.",
        },
    );
}

#[test]
fn a_range_that_is_not_a_cidr_is_refused() {
    let cluster = ExampleCluster::copy();
    cluster.replace("\"10.244.0.0/16\"", "\"10.244.0.0/33\"");
    assert_refused(
        &cluster,
        &Expected {
            position: cluster.position("pod_cidrs", 0, "\"10.244.0.0/33\""),
            field: "network.pod_cidrs[0]",
            problem: "`10.244.0.0/33` is not a valid network range (CIDR).",
            fix: "write an address and a prefix length, e.g. 10.244.0.0/16 (at most /32 for IPv4, /128 for IPv6).",
        },
    );
}

fn assert_overlap_refused(
    edit: (&str, &str),
    line_marker: &str,
    field: &str,
    problem: &str,
    fix: &str,
) {
    let cluster = ExampleCluster::copy();
    cluster.replace(edit.0, edit.1);
    assert_refused(
        &cluster,
        &Expected {
            position: cluster.position(line_marker, 0, edit.1),
            field,
            problem,
            fix,
        },
    );
}

#[test]
fn pod_cidr_overlapping_the_service_cidr_is_refused() {
    assert_overlap_refused(
        ("\"10.244.0.0/16\"", "\"10.96.0.0/16\""),
        "pod_cidrs",
        "network.pod_cidrs[0]",
        "pod CIDR `10.96.0.0/16` overlaps service CIDR `10.96.0.0/12`: packets for one would be routed to the other.",
        "choose non-overlapping ranges.",
    );
}

#[test]
fn pod_cidr_overlapping_the_lan_is_refused() {
    assert_overlap_refused(
        ("\"10.244.0.0/16\"", "\"192.168.0.0/16\""),
        "pod_cidrs",
        "network.pod_cidrs[0]",
        "pod CIDR `192.168.0.0/16` overlaps LAN `192.168.0.0/24`: packets for one would be routed to the other.",
        "choose non-overlapping ranges (192.168.0.0/16, Calico's fallback, often collides with home LANs).",
    );
}

#[test]
fn pod_cidr_overlapping_the_tailnet_is_refused() {
    assert_overlap_refused(
        ("\"10.244.0.0/16\"", "\"100.64.0.0/16\""),
        "pod_cidrs",
        "network.pod_cidrs[0]",
        "pod CIDR `100.64.0.0/16` overlaps tailnet `100.64.0.0/10`: packets for one would be routed to the other.",
        "choose non-overlapping ranges (Tailscale owns 100.64.0.0/10).",
    );
}

#[test]
fn service_cidr_overlapping_the_lan_is_refused() {
    assert_overlap_refused(
        ("\"10.96.0.0/12\"", "\"192.168.0.0/20\""),
        "service_cidrs",
        "network.service_cidrs[0]",
        "service CIDR `192.168.0.0/20` overlaps LAN `192.168.0.0/24`: packets for one would be routed to the other.",
        "choose non-overlapping ranges.",
    );
}

#[test]
fn a_cluster_without_control_plane_is_refused() {
    let cluster = ExampleCluster::copy();
    cluster.replace(
        "roles = [\"control-plane\", \"etcd\"]",
        "roles = [\"worker\"]",
    );
    assert_refused(
        &cluster,
        &Expected {
            position: cluster.position("[[nodes]]", 0, "[[nodes]]"),
            field: "nodes",
            problem: "no node has the `control-plane` role.",
            fix: "add `roles = [\"control-plane\", \"etcd\"]` to the node that runs the API server.",
        },
    );
}

#[test]
fn a_control_plane_without_etcd_is_refused() {
    let cluster = ExampleCluster::copy();
    cluster.replace(
        "roles = [\"control-plane\", \"etcd\"]",
        "roles = [\"control-plane\"]",
    );
    assert_refused(
        &cluster,
        &Expected {
            position: cluster.position("[[nodes]]", 0, "[[nodes]]"),
            field: "nodes",
            problem: "the control plane has no etcd: no node has the `etcd` role and `etcd.external_servers` is empty.",
            fix: "add \"etcd\" to a control-plane node's roles, or list an external etcd in `[etcd] external_servers`.",
        },
    );
}

#[test]
fn a_control_plane_with_an_external_etcd_is_accepted() {
    require_tool("age");
    let cluster = ExampleCluster::copy();
    cluster.replace(
        "roles = [\"control-plane\", \"etcd\"]",
        "roles = [\"control-plane\"]",
    );
    cluster.replace(
        "\n[calico]\n",
        "\n[etcd]\nexternal_servers = [\"https://etcd.ducksnest.internal:2379\"]\n\n[calico]\n",
    );
    let output = recreate(&cluster);
    assert_success(&output, "recreate with an external etcd");
    let bundle = cluster.bundle();
    assert!(
        bundle
            .join("nodes/ec2-controlplane/apiserver.crt")
            .is_file()
    );
    assert!(
        bundle
            .join("nodes/ec2-controlplane/apiserver-etcd-client.crt")
            .is_file()
    );
    assert!(
        !bundle
            .join("nodes/ec2-controlplane/etcd-server.crt")
            .exists(),
        "no stacked etcd member, so no etcd server certificate"
    );
}

/// Replaces laptop-ultra's host key file with `line` and checks the refusal.
fn assert_host_key_refused(cluster: &ExampleCluster, problem: &str, fix: &str) {
    let key_file = cluster
        .root()
        .join("hosts/laptop-ultra/ssh_host_ed25519_key.pub");
    let problem = problem.replace("{path}", &key_file.display().to_string());
    let fix = fix.replace("{path}", &key_file.display().to_string());
    assert_refused(
        cluster,
        &Expected {
            position: cluster.position(
                "host_key = \"laptop-ultra/",
                0,
                "\"laptop-ultra/ssh_host_ed25519_key.pub\"",
            ),
            field: "nodes[2].host_key",
            problem: &problem,
            fix: &fix,
        },
    );
}

/// Generates an SSH key with `ssh-keygen` in the temp dir and makes it laptop-ultra's host key.
fn use_generated_host_key(cluster: &ExampleCluster, args: &[&str]) {
    let private = cluster.root().join("generated_host_key");
    let mut full = vec!["-q", "-N", "", "-C", "root@laptop-ultra", "-f"];
    full.push(private.to_str().expect("utf-8 temp path"));
    full.extend_from_slice(args);
    let output = common::run("ssh-keygen", &full);
    assert_success(&output, "ssh-keygen");
    let public = fs::read(private.with_extension("pub")).expect("read generated public key");
    fs::remove_file(&private).expect("remove the generated private key");
    fs::remove_file(private.with_extension("pub")).expect("remove the generated public key");
    fs::write(
        cluster
            .root()
            .join("hosts/laptop-ultra/ssh_host_ed25519_key.pub"),
        public,
    )
    .expect("write host key");
}

const UNSUPPORTED_FIX: &str =
    "use an ssh-ed25519 key (or ssh-rsa of 2048 to 4096 bits), or an `age1…` recipient.";
const RSA_SIZE_FIX: &str = "generate an ssh-ed25519 host key, or an RSA key within that range.";

#[test]
fn an_ecdsa_host_key_is_refused() {
    let cluster = ExampleCluster::copy();
    use_generated_host_key(&cluster, &["-t", "ecdsa"]);
    assert_host_key_refused(
        &cluster,
        "node `laptop-ultra` (host key {path}) uses a `ecdsa-sha2-nistp256` key, which age cannot encrypt to.",
        UNSUPPORTED_FIX,
    );
}

#[test]
fn a_security_key_host_key_is_refused() {
    // A FIDO key cannot be generated without the token, so write its public line by hand:
    // string "sk-ssh-ed25519@openssh.com", string key (32 bytes), string application.
    fn ssh_string(bytes: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(bytes.len())
            .expect("short")
            .to_be_bytes()
            .to_vec();
        out.extend_from_slice(bytes);
        out
    }
    let mut blob = ssh_string(b"sk-ssh-ed25519@openssh.com");
    blob.extend(ssh_string(&[7u8; 32]));
    blob.extend(ssh_string(b"ssh:"));
    let line = format!(
        "sk-ssh-ed25519@openssh.com {} root@laptop-ultra\n",
        base64::engine::general_purpose::STANDARD.encode(blob)
    );
    let cluster = ExampleCluster::copy();
    fs::write(
        cluster
            .root()
            .join("hosts/laptop-ultra/ssh_host_ed25519_key.pub"),
        line,
    )
    .expect("write host key");
    assert_host_key_refused(
        &cluster,
        "node `laptop-ultra` (host key {path}) uses a `sk-ssh-ed25519@openssh.com` key, which age cannot encrypt to.",
        UNSUPPORTED_FIX,
    );
}

#[test]
fn an_rsa_1024_host_key_is_refused() {
    let cluster = ExampleCluster::copy();
    use_generated_host_key(&cluster, &["-t", "rsa", "-b", "1024"]);
    assert_host_key_refused(
        &cluster,
        "node `laptop-ultra` (host key {path}) uses a 1024-bit RSA key; kubepki accepts 2048 to 4096 bits (the Rust age crate refuses larger ones and smaller ones are weak).",
        RSA_SIZE_FIX,
    );
}

#[test]
fn an_rsa_host_key_over_4096_bits_is_refused() {
    let cluster = ExampleCluster::copy();
    use_generated_host_key(&cluster, &["-t", "rsa", "-b", "4104"]);
    assert_host_key_refused(
        &cluster,
        "node `laptop-ultra` (host key {path}) uses a 4104-bit RSA key; kubepki accepts 2048 to 4096 bits (the Rust age crate refuses larger ones and smaller ones are weak).",
        RSA_SIZE_FIX,
    );
}

const KEYSCAN_FIX: &str =
    "fetch it with `ssh-keyscan -t ed25519 <host> | cut -d' ' -f2- > {path}`.";

#[test]
fn a_missing_host_key_file_is_refused() {
    let cluster = ExampleCluster::copy();
    let key_file = cluster
        .root()
        .join("hosts/laptop-ultra/ssh_host_ed25519_key.pub");
    fs::remove_file(&key_file).expect("remove host key");
    assert_host_key_refused(
        &cluster,
        "cannot read host key {path} of node `laptop-ultra`: No such file or directory (os error 2).",
        KEYSCAN_FIX,
    );
}

#[test]
fn an_unreadable_host_key_file_is_refused() {
    // A folder where the key file should be cannot be read, even by root (chmod 000 can).
    let cluster = ExampleCluster::copy();
    let key_file = cluster
        .root()
        .join("hosts/laptop-ultra/ssh_host_ed25519_key.pub");
    fs::remove_file(&key_file).expect("remove host key");
    fs::create_dir(&key_file).expect("a folder in its place");
    assert_host_key_refused(
        &cluster,
        "cannot read host key {path} of node `laptop-ultra`: Is a directory (os error 21).",
        KEYSCAN_FIX,
    );
}

#[test]
fn an_unknown_field_is_refused() {
    let cluster = ExampleCluster::copy();
    cluster.replace("port = 6443\n", "port = 6443\nreplicas = 3\n");
    assert_refused(
        &cluster,
        &Expected {
            position: cluster.position("replicas = 3", 0, "replicas"),
            field: "api.replicas",
            problem: "unknown field `replicas`, expected `port` or `endpoints`.",
            fix: "remove it, or correct its spelling (the README lists every field).",
        },
    );
}

#[test]
fn a_node_ip_that_is_not_one_of_the_node_addresses_is_refused() {
    let cluster = ExampleCluster::copy();
    cluster.replace("node_ip = \"192.168.0.22\"", "node_ip = \"192.168.0.99\"");
    assert_refused(
        &cluster,
        &Expected {
            position: cluster.position("node_ip = \"192.168.0.99\"", 0, "\"192.168.0.99\""),
            field: "nodes[2].node_ip",
            problem: "`node_ip` `192.168.0.99` of node `laptop-ultra` is not one of its addresses.",
            fix: "use one of the addresses listed under `[nodes.addresses]`, or add it there.",
        },
    );
}

#[test]
fn the_example_cluster_itself_is_accepted() {
    // The baseline the other tests break: without it, every refusal could be for another reason.
    let cluster = ExampleCluster::copy();
    let inventory = cluster.inventory();
    let output = cluster.kubepki(&["inventory", "-f", inventory.to_str().expect("utf-8")]);
    assert_success(&output, "kubepki inventory on the example cluster");
}

//! `kubepki renew`: only the named leaves are re-issued, the CAs stay, keys are kept unless
//! --new-keys; checked with openssl and the Go age CLI.

mod lifecycle_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use lifecycle_support::{Workspace, age_decrypt, git, openssl_verify, operator_key};

/// Every bundle file and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(name, fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn changed(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut names: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn renews_only_the_named_certificate_and_keeps_its_key() {
    let ws = Workspace::new();
    ws.ok(&["recreate"]);
    let bundle = ws.bundle();
    let before = snapshot(&bundle);
    let key_before = age_decrypt(&bundle.join("nodes/laptop-ultra/kubelet-client.key.age"));
    let head = ws.head();

    let key = operator_key();
    let out = ws.ok(&[
        "renew",
        "nodes/laptop-ultra/kubelet-client",
        "-i",
        key.to_str().unwrap(),
    ]);
    assert!(
        out.contains("re-issue   nodes/laptop-ultra/kubelet-client   renewal requested"),
        "{out}"
    );

    let after = snapshot(&bundle);
    assert_eq!(
        changed(&before, &after),
        ["manifest.json", "nodes/laptop-ultra/kubelet-client.crt"],
        "only the certificate (and the index) change; the sealed key stays byte for byte"
    );
    assert_eq!(
        age_decrypt(&bundle.join("nodes/laptop-ultra/kubelet-client.key.age")),
        key_before
    );
    // Same key, new certificate, same CA.
    let cert = bundle.join("nodes/laptop-ultra/kubelet-client.crt");
    let (ok, text) = openssl_verify(&bundle.join("ca/kubernetes.crt"), &cert);
    assert!(ok, "{text}");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.pem");
    fs::write(&key_file, &key_before).unwrap();
    let modulus = |args: &[&str]| {
        let out = lifecycle_support::tool("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    assert_eq!(
        modulus(&["x509", "-noout", "-pubkey", "-in", cert.to_str().unwrap()]),
        modulus(&["pkey", "-pubout", "-in", key_file.to_str().unwrap()]),
        "the renewed certificate is for the kept key"
    );

    // One commit with exactly those files.
    assert_eq!(git(ws.root(), &["rev-parse", "HEAD~1"]).trim(), head);
    let shown = git(ws.root(), &["show", "--name-status", "--format=%s", "HEAD"]);
    assert_eq!(
        shown.trim(),
        "kubepki: renew nodes/laptop-ultra/kubelet-client\n\n\
         M\thosts/pki/manifest.json\n\
         M\thosts/pki/nodes/laptop-ultra/kubelet-client.crt"
    );
}

#[test]
fn new_keys_rotates_the_keys_of_a_node_and_leaves_the_cas_alone() {
    let ws = Workspace::new();
    ws.ok(&["recreate"]);
    let bundle = ws.bundle();
    let before = snapshot(&bundle);
    let key_before = age_decrypt(&bundle.join("nodes/laptop-old/kube-proxy.key.age"));
    let key = operator_key();
    ws.ok(&[
        "renew",
        "laptop-old",
        "--new-keys",
        "-i",
        key.to_str().unwrap(),
    ]);
    let after = snapshot(&bundle);
    let mut expected: Vec<String> = [
        "calico-cni",
        "kube-proxy",
        "kubelet-client",
        "kubelet-serving",
    ]
    .iter()
    .flat_map(|m| {
        [
            format!("nodes/laptop-old/{m}.crt"),
            format!("nodes/laptop-old/{m}.key.age"),
        ]
    })
    .collect();
    expected.push("manifest.json".into());
    expected.sort();
    assert_eq!(changed(&before, &after), expected);
    assert_ne!(
        age_decrypt(&bundle.join("nodes/laptop-old/kube-proxy.key.age")),
        key_before
    );
}

#[test]
fn a_ca_or_an_unknown_name_is_refused_before_anything_is_written() {
    let ws = Workspace::new();
    ws.ok(&["recreate"]);
    let before = snapshot(&ws.bundle());
    let out = ws.kubepki(&["renew", "etcd"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rotate-ca"));
    let out = ws.kubepki(&["renew", "nodes/nowhere/kubelet-client"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a certificate, material or node")
    );
    assert_eq!(snapshot(&ws.bundle()), before);
}

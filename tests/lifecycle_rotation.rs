//! CA rotation with overlap: during the rotation openssl and a real etcd accept leaves of the
//! old AND the new CA; after --finish-ca-rotation the old CA's client is refused.

mod lifecycle_support;

use std::fs;
use std::path::{Path, PathBuf};

use lifecycle_support::{Etcd, Workspace, age_decrypt, git, openssl_verify, operator_key};

/// Copies a certificate and its decrypted key out of the bundle (as activation would install them).
fn install(bundle: &Path, material: &str, into: &Path, tag: &str) -> (PathBuf, PathBuf) {
    let cert = into.join(format!("{tag}-{}.crt", material.replace('/', "-")));
    let key = into.join(format!("{tag}-{}.key", material.replace('/', "-")));
    fs::copy(bundle.join(format!("{material}.crt")), &cert).unwrap();
    fs::write(
        &key,
        age_decrypt(&bundle.join(format!("{material}.key.age"))),
    )
    .unwrap();
    (cert, key)
}

fn pins(ws: &Workspace, authority: &str) -> Vec<String> {
    let text = fs::read_to_string(ws.inventory()).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    doc["pki"]["pins"][authority]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn certificates_in(path: &Path) -> usize {
    fs::read_to_string(path)
        .unwrap()
        .matches("-----BEGIN CERTIFICATE-----")
        .count()
}

#[test]
fn a_rotation_is_accepted_by_openssl_and_etcd_for_both_cas_then_finished() {
    let ws = Workspace::new();
    let key = operator_key();
    let key = key.to_str().unwrap();
    ws.ok(&["recreate"]);
    let bundle = ws.bundle();
    let keep = tempfile::tempdir().unwrap();
    let old_pins = pins(&ws, "etcd");
    assert_eq!(old_pins.len(), 1);

    // Leaves from the old CAs, as nodes that are not yet redeployed still hold them.
    let (old_client, old_client_key) = install(
        &bundle,
        "nodes/ec2-controlplane/apiserver-etcd-client",
        keep.path(),
        "old",
    );
    let old_kubelet = keep.path().join("old-kubelet-client.crt");
    fs::copy(
        bundle.join("nodes/laptop-ultra/kubelet-client.crt"),
        &old_kubelet,
    )
    .unwrap();

    // 0. The preview: every CA rotates and every leaf is re-issued; nothing is written.
    let preview: serde_json::Value =
        serde_json::from_str(&ws.ok(&["plan", "--json", "--rotate-ca"])).unwrap();
    assert_eq!(preview["diff"]["summary"]["reissue"], 3 + 27);
    assert_eq!(certificates_in(&bundle.join("ca/etcd.crt")), 1);

    // 1. Start the rotation.
    let out = ws.ok(&["recreate", "--rotate-ca", "-i", key]);
    assert!(
        out.contains("kubepki: rotate 3 CAs; re-issue 27 certs from the new CA"),
        "{out}"
    );
    for authority in ["kubernetes", "etcd", "front-proxy"] {
        let trust = bundle.join(format!("ca/{authority}.crt"));
        assert_eq!(
            certificates_in(&trust),
            2,
            "{authority}: new CA, then old CA"
        );
        let pinned = pins(&ws, authority);
        assert_eq!(pinned.len(), 2, "{authority}: both fingerprints pinned");
    }
    assert_eq!(
        pins(&ws, "etcd")[1],
        old_pins[0],
        "the old CA is pinned second"
    );
    let subject = git(ws.root(), &["log", "-1", "--format=%s"]);
    assert_eq!(
        subject.trim(),
        "kubepki: rotate 3 CAs; re-issue 27 certs from the new CA"
    );

    let (new_client, new_client_key) = install(
        &bundle,
        "nodes/ec2-controlplane/apiserver-etcd-client",
        keep.path(),
        "new",
    );
    let (server, server_key) = install(
        &bundle,
        "nodes/ec2-controlplane/etcd-server",
        keep.path(),
        "new",
    );
    let rotating_etcd = keep.path().join("etcd-ca-rotating.crt");
    fs::copy(bundle.join("ca/etcd.crt"), &rotating_etcd).unwrap();

    // openssl: leaves of both CAs verify against the trust bundles.
    for (trust, leaf) in [
        ("ca/etcd.crt", &old_client),
        ("ca/etcd.crt", &new_client),
        ("ca/kubernetes.crt", &old_kubelet),
        (
            "ca/kubernetes.crt",
            &bundle.join("nodes/laptop-ultra/kubelet-client.crt"),
        ),
    ] {
        let (ok, text) = openssl_verify(&bundle.join(trust), leaf);
        assert!(ok, "{} against {trust}: {text}", leaf.display());
    }
    assert_ne!(
        fs::read(&old_client).unwrap(),
        fs::read(&new_client).unwrap()
    );

    // etcd: the new server trusts clients of both CAs.
    {
        let data = tempfile::tempdir().unwrap();
        let etcd = Etcd::start(data.path(), &server, &server_key, &rotating_etcd);
        let (ok, text) = etcd.put(&rotating_etcd, &old_client, &old_client_key, "k", "old-ca");
        assert!(ok, "old-CA client refused during the rotation: {text}");
        let (ok, text) = etcd.put(&rotating_etcd, &new_client, &new_client_key, "k", "new-ca");
        assert!(ok, "new-CA client refused during the rotation: {text}");
    }

    // A second rotation cannot start before this one is finished.
    let out = ws.kubepki(&["recreate", "--rotate-ca", "-i", key]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--finish-ca-rotation"));

    // 2. Finish: the old CA leaves trust bundles and pins; no leaf is re-issued.
    let preview: serde_json::Value =
        serde_json::from_str(&ws.ok(&["plan", "--json", "--finish-ca-rotation"])).unwrap();
    assert_eq!(preview["diff"]["summary"]["retire"], 3);
    assert_eq!(preview["diff"]["summary"]["reissue"], 0);
    let client_before_finish =
        fs::read(bundle.join("nodes/ec2-controlplane/apiserver-etcd-client.crt")).unwrap();
    let out = ws.ok(&["recreate", "--finish-ca-rotation", "-i", key]);
    assert!(
        out.contains("kubepki: finish CA rotation (drop 3 old CAs)"),
        "{out}"
    );
    for authority in ["kubernetes", "etcd", "front-proxy"] {
        assert_eq!(
            certificates_in(&bundle.join(format!("ca/{authority}.crt"))),
            1
        );
        assert_eq!(pins(&ws, authority).len(), 1);
    }
    assert_eq!(
        fs::read(bundle.join("nodes/ec2-controlplane/apiserver-etcd-client.crt")).unwrap(),
        client_before_finish
    );
    let shown = git(ws.root(), &["show", "--name-status", "--format=", "HEAD"]);
    assert_eq!(
        shown.trim(),
        "M\thosts/cluster.toml\n\
         M\thosts/pki/ca/etcd.crt\n\
         M\thosts/pki/ca/front-proxy.crt\n\
         M\thosts/pki/ca/kubernetes.crt\n\
         M\thosts/pki/manifest.json"
    );
    let (ok, _) = openssl_verify(&bundle.join("ca/etcd.crt"), &old_client);
    assert!(!ok, "the old CA's client must no longer verify");
    let (ok, text) = openssl_verify(&bundle.join("ca/etcd.crt"), &new_client);
    assert!(ok, "{text}");

    let finished_etcd = keep.path().join("etcd-ca-finished.crt");
    fs::copy(bundle.join("ca/etcd.crt"), &finished_etcd).unwrap();
    let data = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(data.path(), &server, &server_key, &finished_etcd);
    let (ok, text) = etcd.put(&finished_etcd, &new_client, &new_client_key, "k", "new-ca");
    assert!(ok, "new-CA client refused after the rotation: {text}");
    let (ok, text) = etcd.put(&finished_etcd, &old_client, &old_client_key, "k", "old-ca");
    assert!(
        !ok,
        "old-CA client accepted after the rotation finished: {text}"
    );
    let log = fs::read_to_string(&etcd.log).unwrap();
    assert!(
        log.contains("rejected connection") && log.contains("unknown authority"),
        "etcd must refuse it for its certificate, not for another reason:\n{log}"
    );

    // Nothing left to finish.
    let out = ws.kubepki(&["recreate", "--finish-ca-rotation", "-i", key]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no CA is being rotated"));
}

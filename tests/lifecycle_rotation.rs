//! CA rotation in three steps: after step 1 (trust) nodes with the old and the new trust bundle
//! interoperate on old leaves; after step 2 (sign) a node not yet redeployed (step-1 trust
//! bundle) accepts the new leaves of redeployed nodes, checked with openssl and a real etcd;
//! after step 3 (--finish-ca-rotation) the old CA's client is refused.

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
fn a_staged_rotation_never_leaves_a_node_rejecting_its_peers() {
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
    let (old_server, old_server_key) = install(
        &bundle,
        "nodes/ec2-controlplane/etcd-server",
        keep.path(),
        "old",
    );
    let old_kubelet = keep.path().join("old-kubelet-client.crt");
    fs::copy(
        bundle.join("nodes/laptop-ultra/kubelet-client.crt"),
        &old_kubelet,
    )
    .unwrap();
    let old_trust = keep.path().join("etcd-ca-old.crt");
    fs::copy(bundle.join("ca/etcd.crt"), &old_trust).unwrap();
    let old_kubernetes_trust = keep.path().join("kubernetes-ca-old.crt");
    fs::copy(bundle.join("ca/kubernetes.crt"), &old_kubernetes_trust).unwrap();

    // Out of order: nothing to sign with, nothing to finish.
    let out = ws.kubepki(&["recreate", "--sign-with-new-ca", "-i", key]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rotate-ca"));

    // 1. Trust: the preview republishes the 3 CAs and re-issues no leaf; nothing is written.
    let preview: serde_json::Value =
        serde_json::from_str(&ws.ok(&["plan", "--json", "--rotate-ca"])).unwrap();
    assert_eq!(preview["diff"]["summary"]["reissue"], 3);
    assert_eq!(certificates_in(&bundle.join("ca/etcd.crt")), 1);

    let out = ws.ok(&["recreate", "--rotate-ca", "-i", key]);
    let step1_subject = "kubepki: trust 3 new CAs (CA rotation step 1 of 3)";
    assert!(out.contains(step1_subject), "{out}");
    let subject = git(ws.root(), &["log", "-1", "--format=%s"]);
    assert_eq!(subject.trim(), step1_subject);
    for authority in ["kubernetes", "etcd", "front-proxy"] {
        let trust = bundle.join(format!("ca/{authority}.crt"));
        assert_eq!(
            certificates_in(&trust),
            2,
            "{authority}: old CA, then new CA"
        );
        assert_eq!(pins(&ws, authority).len(), 2, "{authority}: both pinned");
        assert!(bundle.join(format!("ca/{authority}.next.key.age")).exists());
    }
    assert_eq!(
        pins(&ws, "etcd")[0],
        old_pins[0],
        "the old CA still signs: pinned first"
    );
    assert_eq!(
        fs::read(bundle.join("nodes/ec2-controlplane/apiserver-etcd-client.crt")).unwrap(),
        fs::read(&old_client).unwrap(),
        "step 1 re-issues no leaf"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(bundle.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["authorities"]["etcd"]["pending"],
        serde_json::Value::String(pins(&ws, "etcd")[1].clone())
    );
    let shown = git(ws.root(), &["show", "--name-status", "--format=", "HEAD"]);
    assert!(
        shown.contains("A\thosts/pki/ca/etcd.next.key.age"),
        "{shown}"
    );
    assert!(
        !shown.contains("nodes/"),
        "no leaf changes in step 1: {shown}"
    );
    let step1_pins = pins(&ws, "etcd");
    // An ordinary run between the steps keeps the pending CA and its key.
    let out = ws.ok(&["recreate", "-i", key]);
    assert!(out.contains("nothing to do"), "{out}");
    assert!(bundle.join("ca/etcd.next.key.age").exists());
    // `kubepki check` tells the pending CA from the signing one.
    let out = ws.kubepki(&["check", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let roles: Vec<(String, String)> = report["authorities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["authority"] == "etcd")
        .map(|a| {
            (
                a["fingerprint"].as_str().unwrap().to_string(),
                a["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        vec![
            (step1_pins[0].clone(), "signing".to_string()),
            (step1_pins[1].clone(), "pending".to_string()),
        ]
    );
    let step1_trust = keep.path().join("etcd-ca-step1.crt");
    fs::copy(bundle.join("ca/etcd.crt"), &step1_trust).unwrap();
    let step1_kubernetes_trust = keep.path().join("kubernetes-ca-step1.crt");
    fs::copy(bundle.join("ca/kubernetes.crt"), &step1_kubernetes_trust).unwrap();

    // After step 1, a deployed node (step-1 bundle) and one that is not (old bundle)
    // interoperate in both directions: the leaves are still the old CA's.
    let (ok, text) = openssl_verify(&step1_trust, &old_client);
    assert!(ok, "{text}");
    {
        let data = tempfile::tempdir().unwrap();
        // Deployed server, client not yet deployed (it checks the server with the old bundle).
        let etcd = Etcd::start(data.path(), &old_server, &old_server_key, &step1_trust);
        let (ok, text) = etcd.put(&old_trust, &old_client, &old_client_key, "k", "a");
        assert!(
            ok,
            "step 1: old-bundle client refused by a step-1 server: {text}"
        );
    }
    {
        let data = tempfile::tempdir().unwrap();
        // Server not yet deployed, deployed client (it checks the server with the step-1 bundle).
        let etcd = Etcd::start(data.path(), &old_server, &old_server_key, &old_trust);
        let (ok, text) = etcd.put(&step1_trust, &old_client, &old_client_key, "k", "b");
        assert!(
            ok,
            "step 1: step-1 client refused by an old-bundle server: {text}"
        );
    }

    // Steps out of order say which step comes next.
    for args in [
        ["recreate", "--rotate-ca", "-i", key],
        ["recreate", "--finish-ca-rotation", "-i", key],
    ] {
        let out = ws.kubepki(&args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--sign-with-new-ca"), "{stderr}");
    }

    // 2. Sign: the pending CAs sign, every leaf is re-issued, pins stay (new first now).
    let preview: serde_json::Value =
        serde_json::from_str(&ws.ok(&["plan", "--json", "--sign-with-new-ca"])).unwrap();
    assert_eq!(preview["diff"]["summary"]["reissue"], 3 + 27);
    let out = ws.ok(&["recreate", "--sign-with-new-ca", "-i", key]);
    let step2_subject = "kubepki: rotate 3 CAs; re-issue 27 certs from the new CA";
    assert!(out.contains(step2_subject), "{out}");
    let subject = git(ws.root(), &["log", "-1", "--format=%s"]);
    assert_eq!(subject.trim(), step2_subject);
    let step2_pins = pins(&ws, "etcd");
    assert_eq!(
        step2_pins,
        vec![step1_pins[1].clone(), step1_pins[0].clone()]
    );
    for authority in ["kubernetes", "etcd", "front-proxy"] {
        assert_eq!(
            certificates_in(&bundle.join(format!("ca/{authority}.crt"))),
            2
        );
        assert!(!bundle.join(format!("ca/{authority}.next.key.age")).exists());
    }
    let shown = git(ws.root(), &["show", "--name-status", "--format=", "HEAD"]);
    assert!(
        shown.contains("D\thosts/pki/ca/etcd.next.key.age"),
        "{shown}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(bundle.join("manifest.json")).unwrap()).unwrap();
    assert!(manifest["authorities"]["etcd"].get("pending").is_none());

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
    let step2_trust = keep.path().join("etcd-ca-step2.crt");
    fs::copy(bundle.join("ca/etcd.crt"), &step2_trust).unwrap();
    assert_ne!(
        fs::read(&old_client).unwrap(),
        fs::read(&new_client).unwrap()
    );

    // The point of step 1: a node not yet redeployed (step-1 bundle) accepts the new leaves;
    // a node that skipped step 1 (old bundle) would not.
    for (trust, leaf) in [
        (&step1_trust, &new_client),
        (&step1_trust, &server),
        (
            &step1_kubernetes_trust,
            &bundle.join("nodes/laptop-ultra/kubelet-client.crt"),
        ),
        (
            &step1_kubernetes_trust,
            &bundle.join("nodes/ec2-controlplane/apiserver.crt"),
        ),
        (&step2_trust, &old_client),
        (&step2_trust, &new_client),
        (&bundle.join("ca/kubernetes.crt"), &old_kubelet),
    ] {
        let (ok, text) = openssl_verify(trust, leaf);
        assert!(ok, "{} against {}: {text}", leaf.display(), trust.display());
    }
    let (ok, _) = openssl_verify(&old_trust, &new_client);
    assert!(
        !ok,
        "the old bundle alone must not accept the new CA's leaves"
    );
    let (ok, _) = openssl_verify(&old_kubernetes_trust, &old_kubelet);
    assert!(ok);

    // etcd during the step-2 rollout, both directions.
    {
        let data = tempfile::tempdir().unwrap();
        // Not yet redeployed server (old leaf, step-1 bundle), redeployed client.
        let etcd = Etcd::start(data.path(), &old_server, &old_server_key, &step1_trust);
        let (ok, text) = etcd.put(&step2_trust, &new_client, &new_client_key, "k", "c");
        assert!(
            ok,
            "step 2: new-CA client refused by a not-yet-redeployed server: {text}"
        );
        let (ok, text) = etcd.put(&step1_trust, &old_client, &old_client_key, "k", "d");
        assert!(
            ok,
            "step 2: old-CA client refused by a not-yet-redeployed server: {text}"
        );
    }
    {
        let data = tempfile::tempdir().unwrap();
        // Redeployed server (new leaf, step-2 bundle), client not yet redeployed.
        let etcd = Etcd::start(data.path(), &server, &server_key, &step2_trust);
        let (ok, text) = etcd.put(&step1_trust, &old_client, &old_client_key, "k", "e");
        assert!(ok, "step 2: not-yet-redeployed client refused: {text}");
        let (ok, text) = etcd.put(&step2_trust, &new_client, &new_client_key, "k", "f");
        assert!(ok, "step 2: new-CA client refused: {text}");
    }

    // A second rotation cannot start before this one is finished; step 2 does not run twice.
    let out = ws.kubepki(&["recreate", "--rotate-ca", "-i", key]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--finish-ca-rotation"));
    let out = ws.kubepki(&["recreate", "--sign-with-new-ca", "-i", key]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--finish-ca-rotation"));

    // 3. Finish: the old CA leaves trust bundles and pins; no leaf is re-issued.
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

/// Decrypts `file` with the Go `age` CLI and `identity`; `None` when age refuses.
fn age_decrypt_as(identity: &Path, file: &Path) -> Option<Vec<u8>> {
    let out = lifecycle_support::tool("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .expect("the Go age CLI runs");
    out.status.success().then_some(out.stdout)
}

/// Between steps 1 and 2 the new CAs' keys wait in `ca/<authority>.next.key.age`; a change of
/// operators in that phase re-seals them with the CA keys, so a removed operator cannot sign
/// with the new CAs and an added one can finish the rotation.
#[test]
fn operators_changed_between_steps_one_and_two_reach_the_pending_ca_keys() {
    let ws = Workspace::new();
    let key = operator_key();
    let key = key.to_str().unwrap();
    ws.ok(&["recreate"]);
    ws.ok(&["recreate", "--rotate-ca", "-i", key]);
    let bundle = ws.bundle();
    let next_keys: Vec<PathBuf> = ["kubernetes", "etcd", "front-proxy"]
        .iter()
        .map(|a| bundle.join(format!("ca/{a}.next.key.age")))
        .collect();

    let second = ws.root().join("second_operator");
    let status = lifecycle_support::tool("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "second", "-f"])
        .arg(&second)
        .status()
        .unwrap();
    assert!(status.success());
    let second_pub = fs::read_to_string(second.with_extension("pub")).unwrap();
    let second_line = format!("  \"{}\",\n", second_pub.trim());
    let anchor = "operator-TEST-KEY\",\n";
    ws.edit_inventory(|t| t.replace(anchor, &format!("{anchor}{second_line}")));
    for next in &next_keys {
        assert!(age_decrypt_as(&second, next).is_none(), "not listed yet");
    }

    let out = ws.ok(&["recreate", "-i", key]);
    assert!(out.contains("re-seal"), "{out}");
    for next in &next_keys {
        let by_second = age_decrypt_as(&second, next).expect("an added operator reads it");
        assert_eq!(
            by_second,
            age_decrypt(next),
            "the same pending key, re-sealed"
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(bundle.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["files"]["ca/etcd.next.key.age"]["recipients"],
        manifest["files"]["ca/etcd.key.age"]["recipients"],
        "the pending CA key has the CA key's holders"
    );

    ws.edit_inventory(|t| t.replace(&second_line, ""));
    ws.ok(&["recreate", "-i", key]);
    for next in &next_keys {
        assert!(
            age_decrypt_as(&second, next).is_none(),
            "{}: a removed operator must no longer read the pending CA key",
            next.display()
        );
    }

    // Step 2 signs with the re-sealed pending keys: the new leaves verify against the new CA.
    ws.ok(&["recreate", "--sign-with-new-ca", "-i", key]);
    let new_pin = pins(&ws, "etcd")[0].clone();
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(bundle.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["files"]["nodes/ec2-controlplane/etcd-server.crt"]["issuer_fingerprint"],
        serde_json::Value::String(new_pin)
    );
    let (ok, text) = openssl_verify(
        &bundle.join("ca/etcd.crt"),
        &bundle.join("nodes/ec2-controlplane/etcd-server.crt"),
    );
    assert!(ok, "{text}");
}

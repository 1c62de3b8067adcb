//! `kubepki recreate` end to end: the bundle it writes, checked with the real consumers
//! (openssl, Go age), and the reconcile behaviour of later runs.
//!
//! Every test works on a copy of `hosts/` in a temp dir; the repository's own bundle is never touched.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use kubepki::bundle::{self, Bundle, BundleLock, FileEntry, RecreateOptions};
use kubepki::inventory::Inventory;
use kubepki::plan::{San, Usage};
use sha2::{Digest, Sha256};

mod basics;

use basics::{host_key, operator_key, repo, tool};

const BIN: &str = env!("CARGO_BIN_EXE_kubepki");

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        // The repository's own bundle and run leftovers are not part of the inventory.
        if name_str == "pki" || name_str.starts_with('.') {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A scratch copy of the example cluster.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&repo().join("hosts"), &dir.path().join("hosts"));
        Cluster { dir }
    }

    fn inventory(&self) -> PathBuf {
        self.dir.path().join("hosts/cluster.toml")
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("hosts/pki")
    }

    fn edit(&self, change: impl FnOnce(String) -> String) {
        let text = fs::read_to_string(self.inventory()).unwrap();
        let changed = change(text.clone());
        assert_ne!(text, changed, "the edit must change the inventory");
        fs::write(self.inventory(), changed).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("-f")
            .arg(self.inventory())
            .env("HOME", self.dir.path())
            .env_remove("AGE_IDENTITY")
            .output()
            .unwrap()
    }

    /// `kubepki recreate -i <operator key>`, which must succeed.
    fn recreate(&self) -> String {
        let out = self.run(&["recreate", "-i", operator_key().to_str().unwrap()]);
        assert!(
            out.status.success(),
            "recreate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn load(&self) -> Inventory {
        Inventory::load(&self.inventory()).unwrap()
    }

    fn opened(&self) -> Bundle {
        Bundle::open(&self.bundle()).unwrap()
    }

    /// Every file under the bundle and the inventory, with its mtime and digest.
    fn snapshot(&self) -> BTreeMap<String, (SystemTime, String)> {
        let mut out = BTreeMap::new();
        snapshot_into(&self.bundle(), &self.bundle(), &mut out);
        let inventory = self.inventory();
        out.insert(
            "../cluster.toml".into(),
            (
                fs::metadata(&inventory).unwrap().modified().unwrap(),
                sha256(&fs::read(&inventory).unwrap()),
            ),
        );
        out
    }

    /// Adds a worker with a freshly generated ed25519 host key; returns its private key path.
    fn add_node(&self, name: &str, ip: &str) -> PathBuf {
        let keys = self.dir.path().join("keys").join(name);
        fs::create_dir_all(&keys).unwrap();
        let private = keys.join("ssh_host_ed25519_key");
        let status = tool("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&private)
            .status()
            .unwrap();
        assert!(status.success());
        let hosts = self.dir.path().join("hosts").join(name);
        fs::create_dir_all(&hosts).unwrap();
        fs::copy(
            keys.join("ssh_host_ed25519_key.pub"),
            hosts.join("ssh_host_ed25519_key.pub"),
        )
        .unwrap();
        self.edit(|text| {
            format!(
                "{text}\n[[nodes]]\nname = \"{name}\"\nroles = [\"worker\"]\nhost_key = \"{name}/ssh_host_ed25519_key.pub\"\nnode_ip = \"{ip}\"\n\n[nodes.addresses]\nlan = [\"{ip}\"]\n"
            )
        });
        private
    }
}

fn snapshot_into(root: &Path, dir: &Path, out: &mut BTreeMap<String, (SystemTime, String)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            snapshot_into(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::metadata(&path).unwrap();
            out.insert(
                rel,
                (meta.modified().unwrap(), sha256(&fs::read(&path).unwrap())),
            );
        }
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Go `age -d -i identity file`: the plaintext, or the error output.
fn go_age_decrypt(identity: &Path, file: &Path) -> Result<Vec<u8>, String> {
    let out = tool("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn openssl(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = tool("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// The SubjectPublicKeyInfo PEM of a private key (via openssl) and of a certificate.
fn key_and_cert_public_keys(key_pem: &[u8], cert: &Path) -> (String, String) {
    let from_key = openssl(&["pkey", "-pubout"], key_pem);
    assert!(from_key.status.success(), "openssl pkey failed");
    let from_cert = openssl(
        &["x509", "-pubkey", "-noout", "-in", cert.to_str().unwrap()],
        b"",
    );
    assert!(from_cert.status.success(), "openssl x509 failed");
    (
        String::from_utf8(from_key.stdout).unwrap(),
        String::from_utf8(from_cert.stdout).unwrap(),
    )
}

#[test]
fn first_run_writes_every_planned_file_and_the_manifest_hashes_match() {
    let cluster = Cluster::new();
    cluster.recreate();
    let plan = kubepki::plan::plan(&cluster.load());
    let bundle = cluster.opened();
    bundle.verify().unwrap();

    let mut planned: Vec<String> = Vec::new();
    for a in &plan.authorities {
        planned.extend([a.cert_file.clone(), a.key_file.clone()]);
    }
    for c in &plan.certificates {
        planned.extend([c.cert_file.clone(), c.key_file.clone()]);
    }
    for s in &plan.secrets {
        planned.push(s.key_file.clone());
        planned.extend(s.public_file.clone());
    }
    planned.sort();
    let listed: Vec<String> = bundle.manifest.files.keys().cloned().collect();
    assert_eq!(listed, planned);
    for path in &planned {
        let bytes = fs::read(cluster.bundle().join(path)).unwrap();
        assert_eq!(
            sha256(&bytes),
            bundle.manifest.files[path].sha256(),
            "{path}"
        );
    }
    assert_eq!(bundle.manifest.nodes.len(), plan.nodes.len());

    // The pins recorded in the inventory are the manifest's CA fingerprints.
    let pins = cluster.load().spec.pki.pins;
    for (authority, entry) in &bundle.manifest.authorities {
        assert_eq!(pins[authority], entry.fingerprints);
    }
}

#[test]
fn every_certificate_verifies_against_its_ca_with_openssl_and_matches_the_plan() {
    let cluster = Cluster::new();
    cluster.recreate();
    let plan = kubepki::plan::plan(&cluster.load());
    let dir = cluster.bundle();
    for certificate in &plan.certificates {
        let ca = dir.join(format!("ca/{}.crt", certificate.issuer.name()));
        let leaf = dir.join(&certificate.cert_file);
        let out = openssl(
            &[
                "verify",
                "-x509_strict",
                "-CAfile",
                ca.to_str().unwrap(),
                leaf.to_str().unwrap(),
            ],
            b"",
        );
        assert!(
            out.status.success(),
            "openssl verify {}: {}{}",
            certificate.id,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let pem = fs::read(&leaf).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = block.parse_x509().unwrap();
        let cn: Vec<&str> = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            cn,
            vec![certificate.common_name.as_str()],
            "{}",
            certificate.id
        );
        let orgs: Vec<&str> = cert
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(orgs, certificate.organizations, "{}", certificate.id);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert_eq!(
            eku.server_auth,
            certificate.usages.contains(&Usage::ServerAuth),
            "{}",
            certificate.id
        );
        assert_eq!(
            eku.client_auth,
            certificate.usages.contains(&Usage::ClientAuth),
            "{}",
            certificate.id
        );
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        assert!(!cert.is_ca());
        let mut sans: Vec<String> = match cert.subject_alternative_name().unwrap() {
            None => Vec::new(),
            Some(ext) => ext
                .value
                .general_names
                .iter()
                .map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(d) => format!("DNS:{d}"),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => {
                        let ip: std::net::IpAddr = match ip.len() {
                            4 => <[u8; 4]>::try_from(*ip).unwrap().into(),
                            _ => <[u8; 16]>::try_from(*ip).unwrap().into(),
                        };
                        San::Ip(ip).to_string()
                    }
                    other => panic!("unexpected SAN {other:?}"),
                })
                .collect(),
        };
        let mut planned: Vec<String> = certificate.sans.iter().map(|s| s.to_string()).collect();
        sans.sort();
        planned.sort();
        assert_eq!(sans, planned, "{}", certificate.id);
        // Leaves and CAs carry key identifiers, and the leaf names its CA's.
        assert!(
            cert.get_extension_unique(
                &x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER
            )
            .unwrap()
            .is_some()
        );
        assert!(
            cert.get_extension_unique(
                &x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER
            )
            .unwrap()
            .is_some()
        );
        assert!(cert.raw_serial()[0] & 0x80 == 0 && cert.raw_serial().len() == 16);
    }
    for authority in &plan.authorities {
        let pem = fs::read(dir.join(&authority.cert_file)).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = block.parse_x509().unwrap();
        assert!(cert.is_ca());
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        let days = (cert.validity().not_after.to_datetime()
            - cert.validity().not_before.to_datetime())
        .whole_days();
        assert_eq!(
            days, 3650,
            "CA validity is the inventory's plus the 5-minute back-dating"
        );
    }
}

#[test]
fn go_age_decrypts_a_nodes_key_with_its_host_key_only_and_the_key_matches_the_certificate() {
    let cluster = Cluster::new();
    cluster.recreate();
    let dir = cluster.bundle();

    // ed25519 host key: the control plane's own API server key.
    let key = go_age_decrypt(
        &host_key("ec2-controlplane"),
        &dir.join("nodes/ec2-controlplane/apiserver.key.age"),
    )
    .unwrap();
    let (a, b) = key_and_cert_public_keys(&key, &dir.join("nodes/ec2-controlplane/apiserver.crt"));
    assert_eq!(a, b);

    // RSA host key: laptop-old's kubelet client key.
    let key = go_age_decrypt(
        &host_key("laptop-old"),
        &dir.join("nodes/laptop-old/kubelet-client.key.age"),
    )
    .unwrap();
    let (a, b) = key_and_cert_public_keys(&key, &dir.join("nodes/laptop-old/kubelet-client.crt"));
    assert_eq!(a, b);

    // Another node cannot read it; neither can a worker read a CA key.
    let refused = go_age_decrypt(
        &host_key("laptop-ultra"),
        &dir.join("nodes/laptop-old/kubelet-client.key.age"),
    );
    assert!(
        refused.is_err(),
        "laptop-ultra must not decrypt laptop-old's key"
    );
    assert!(go_age_decrypt(&host_key("laptop-ultra"), &dir.join("ca/etcd.key.age")).is_err());
    // The control plane holds the Kubernetes CA key (controller-manager signs CSRs), not the etcd one.
    assert!(
        go_age_decrypt(
            &host_key("ec2-controlplane"),
            &dir.join("ca/kubernetes.key.age")
        )
        .is_ok()
    );
    assert!(go_age_decrypt(&host_key("ec2-controlplane"), &dir.join("ca/etcd.key.age")).is_err());

    // The operator reads every key, and the sealed files are binary age.
    for (path, entry) in &cluster.opened().manifest.files {
        if let FileEntry::SealedKey(sealed) = entry {
            let bytes = fs::read(dir.join(path)).unwrap();
            assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "{path}");
            assert!(sealed.recipients.contains(&"operator:duck".to_string()));
            go_age_decrypt(&operator_key(), &dir.join(path)).unwrap();
        }
    }
    let sa = go_age_decrypt(
        &operator_key(),
        &dir.join("cluster/service-account.key.age"),
    )
    .unwrap();
    let from_key = openssl(&["pkey", "-pubout"], &sa);
    assert_eq!(
        String::from_utf8(from_key.stdout).unwrap(),
        fs::read_to_string(dir.join("cluster/service-account.pub")).unwrap()
    );
}

#[test]
fn an_rsa_2048_inventory_issues_rsa_keys_that_verify() {
    let cluster = Cluster::new();
    cluster.edit(|t| t.replace("algorithm = \"ecdsa-p256\"", "algorithm = \"rsa-2048\""));
    cluster.recreate();
    let dir = cluster.bundle();
    let leaf = dir.join("nodes/laptop-firebat/kubelet-serving.crt");
    let out = openssl(
        &[
            "verify",
            "-CAfile",
            dir.join("ca/kubernetes.crt").to_str().unwrap(),
            leaf.to_str().unwrap(),
        ],
        b"",
    );
    assert!(out.status.success());
    let text = openssl(
        &["x509", "-noout", "-text", "-in", leaf.to_str().unwrap()],
        b"",
    );
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(text.contains("sha256WithRSAEncryption"));
    assert!(text.contains("Key Encipherment"));
    let key = go_age_decrypt(
        &host_key("laptop-firebat"),
        &dir.join("nodes/laptop-firebat/kubelet-serving.key.age"),
    )
    .unwrap();
    let (a, b) = key_and_cert_public_keys(&key, &leaf);
    assert_eq!(a, b);
    assert_eq!(cluster.opened().manifest.algorithm.name(), "rsa-2048");
}

#[test]
fn a_second_run_with_an_unchanged_inventory_writes_nothing() {
    let cluster = Cluster::new();
    cluster.recreate();
    let before = cluster.snapshot();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // No identity is needed when nothing has to be decrypted.
    let out = cluster.run(&["recreate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
    assert_eq!(cluster.snapshot(), before);
}

#[test]
fn adding_a_node_touches_only_that_nodes_files_and_the_manifest() {
    let cluster = Cluster::new();
    cluster.recreate();
    let before = cluster.snapshot();
    let new_key = cluster.add_node("laptop-new", "192.168.0.24");
    let output = cluster.recreate();
    assert!(
        output.contains("nodes/laptop-new/kubelet-client (new)"),
        "{output}"
    );
    let after = cluster.snapshot();

    for (path, state) in &before {
        if path == "manifest.json" || path == "../cluster.toml" {
            continue;
        }
        assert_eq!(after.get(path), Some(state), "{path} must stay untouched");
    }
    let added: Vec<&String> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(!added.is_empty());
    for path in &added {
        assert!(
            path.starts_with("nodes/laptop-new/"),
            "unexpected new file {path}"
        );
    }
    cluster.opened().verify().unwrap();
    let key = go_age_decrypt(
        &new_key,
        &cluster
            .bundle()
            .join("nodes/laptop-new/kubelet-client.key.age"),
    )
    .unwrap();
    let (a, b) = key_and_cert_public_keys(
        &key,
        &cluster.bundle().join("nodes/laptop-new/kubelet-client.crt"),
    );
    assert_eq!(a, b);
}

#[test]
fn removing_a_node_removes_its_files() {
    let cluster = Cluster::new();
    cluster.recreate();
    cluster.edit(|text| {
        let start = text.find("[[nodes]]\nname = \"laptop-ultra\"").unwrap();
        let end = start
            + text[start..]
                .find("[[nodes]]\nname = \"laptop-old\"")
                .unwrap();
        format!("{}{}", &text[..start], &text[end..])
    });
    let output = cluster.recreate();
    assert!(output.contains("nodes/laptop-ultra/kubelet-client.crt (no longer planned)"));
    assert!(!cluster.bundle().join("nodes/laptop-ultra").exists());
    let bundle = cluster.opened();
    bundle.verify().unwrap();
    assert!(
        bundle
            .manifest
            .files
            .keys()
            .all(|p| !p.contains("laptop-ultra"))
    );
    assert!(!bundle.manifest.nodes.contains_key("laptop-ultra"));
}

#[test]
fn removing_an_operator_recipient_reseals_every_key_and_keeps_certificates_byte_identical() {
    let cluster = Cluster::new();
    let keys = cluster.dir.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let second = keys.join("second_operator");
    let status = tool("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "second", "-f"])
        .arg(&second)
        .status()
        .unwrap();
    assert!(status.success());
    let second_pub = fs::read_to_string(keys.join("second_operator.pub")).unwrap();
    let second_line = format!("  \"{}\",\n", second_pub.trim());
    cluster.edit(|t| {
        t.replace(
            "operator-TEST-KEY\",\n",
            &format!("operator-TEST-KEY\",\n{second_line}"),
        )
    });
    cluster.recreate();
    let sealed = cluster
        .bundle()
        .join("nodes/laptop-firebat/kube-proxy.key.age");
    go_age_decrypt(&second, &sealed).expect("the second operator reads keys while listed");
    let before = cluster.snapshot();

    cluster.edit(|t| t.replace(&second_line, ""));
    let output = cluster.recreate();
    assert!(output.contains("re-seal"), "{output}");
    let after = cluster.snapshot();
    for (path, (_, digest)) in &before {
        if path.ends_with(".key.age") {
            assert_ne!(&after[path].1, digest, "{path} must be re-sealed");
        } else if path.ends_with(".crt") || path.ends_with(".pub") {
            assert_eq!(
                &after[path], &before[path],
                "{path} must stay byte-identical"
            );
        }
    }
    let refused = go_age_decrypt(&second, &sealed);
    assert!(
        refused.is_err(),
        "the removed operator key must no longer decrypt"
    );
    let key = go_age_decrypt(&operator_key(), &sealed).unwrap();
    let (a, b) = key_and_cert_public_keys(
        &key,
        &cluster.bundle().join("nodes/laptop-firebat/kube-proxy.crt"),
    );
    assert_eq!(a, b);
    go_age_decrypt(&host_key("laptop-firebat"), &sealed).unwrap();
    cluster.opened().verify().unwrap();
}

#[test]
fn a_run_killed_at_any_write_leaves_the_old_bundle_or_the_new_one() {
    let cluster = Cluster::new();
    cluster.recreate();
    let old = cluster.opened().manifest;
    cluster.add_node("laptop-new", "192.168.0.24");
    let inventory = cluster.load();
    let mut options = RecreateOptions {
        identities: vec![operator_key()],
        skip_pins: true,
        ..RecreateOptions::default()
    };
    let mut crashes = 0;
    for n in 0.. {
        options.fault_after_writes = Some(n);
        let result = bundle::recreate(&inventory, &options);
        // What the next run sees after taking the lock (which repairs leftovers).
        let lock = BundleLock::acquire(&cluster.bundle()).unwrap();
        let now = Bundle::open(&cluster.bundle()).unwrap();
        now.verify().unwrap();
        drop(lock);
        match result {
            Err(kubepki::Error::Bundle(kubepki::bundle::BundleError::InjectedFault { .. })) => {
                crashes += 1;
                let new = now.manifest.nodes.contains_key("laptop-new");
                assert!(
                    now.manifest == old || new,
                    "a crash leaves the old bundle or the new one"
                );
            }
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => {
                assert!(now.manifest.nodes.contains_key("laptop-new"));
                break;
            }
        }
        assert!(n < 1000, "the run never completed");
    }
    assert!(
        crashes > 20,
        "the fault hook must hit every write ({crashes} crashes)"
    );
    let leftovers: Vec<_> = fs::read_dir(cluster.dir.path().join("hosts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("kubepki-staging") || n.contains("kubepki-old"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_concurrent_run_is_refused_by_the_lock_naming_the_holder() {
    let cluster = Cluster::new();
    cluster.recreate();
    let before = cluster.snapshot();
    let lock = BundleLock::acquire(&cluster.bundle()).unwrap();
    cluster.add_node("laptop-new", "192.168.0.24");
    let out = cluster.run(&["recreate", "-i", operator_key().to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("locked by another run"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())),
        "{stderr}"
    );
    let after = cluster.snapshot();
    for (path, state) in &before {
        if path != "../cluster.toml" {
            assert_eq!(after.get(path), Some(state), "{path}");
        }
    }
    drop(lock);
    cluster.recreate();
    assert!(cluster.bundle().join("nodes/laptop-new").exists());
}

#[test]
fn force_reissues_every_leaf_and_keeps_the_cas() {
    let cluster = Cluster::new();
    cluster.recreate();
    let before = cluster.opened().manifest;
    let out = cluster.run(&[
        "recreate",
        "--force",
        "-i",
        operator_key().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = cluster.opened().manifest;
    assert_eq!(before.authorities, after.authorities);
    for (path, entry) in &before.files {
        match entry {
            FileEntry::Certificate(c) => {
                let FileEntry::Certificate(n) = &after.files[path] else {
                    panic!()
                };
                assert_ne!(c.serial, n.serial, "{path}");
                assert_eq!(c.issuer_fingerprint, n.issuer_fingerprint);
            }
            FileEntry::TrustBundle(_) => assert_eq!(&after.files[path], entry),
            _ => {}
        }
    }
}

#[test]
fn issuing_with_an_existing_ca_but_no_identity_fails_clearly_and_writes_nothing() {
    let cluster = Cluster::new();
    cluster.recreate();
    let before = cluster.snapshot();
    cluster.add_node("laptop-new", "192.168.0.24");
    let out = cluster.run(&["recreate"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("-i FILE"), "{stderr}");
    let after = cluster.snapshot();
    for (path, state) in &before {
        if path != "../cluster.toml" {
            assert_eq!(after.get(path), Some(state), "{path}");
        }
    }
    // A key that is no recipient cannot decrypt the CA key either.
    let out = cluster.run(&["recreate", "-i", host_key("laptop-ultra").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ca/kubernetes.key.age"));
}

#[test]
fn an_age_identity_file_operator_can_reissue_and_go_age_reads_its_keys() {
    let cluster = Cluster::new();
    let keys = cluster.dir.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let identity = keys.join("keys.txt");
    let out = tool("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = fs::read_to_string(&identity).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    cluster.edit(|t| {
        t.replace(
            "operator-TEST-KEY\",\n",
            &format!("operator-TEST-KEY\",\n  \"{recipient}\",\n"),
        )
    });
    cluster.recreate();
    // Only the age identity file: it must unseal the CA keys to re-issue every leaf.
    let out = cluster.run(&["recreate", "--force", "-i", identity.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = go_age_decrypt(&identity, &cluster.bundle().join("cluster/admin.key.age")).unwrap();
    let (a, b) = key_and_cert_public_keys(&key, &cluster.bundle().join("cluster/admin.crt"));
    assert_eq!(a, b);
}

#[test]
fn a_passphrase_protected_identity_without_a_terminal_fails_clearly() {
    let cluster = Cluster::new();
    cluster.recreate();
    let keys = cluster.dir.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let protected = keys.join("protected");
    let status = tool("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "correct horse", "-f"])
        .arg(&protected)
        .status()
        .unwrap();
    assert!(status.success());
    cluster.add_node("laptop-new", "192.168.0.24");
    // setsid: no controlling terminal, as under CI or a systemd unit.
    let out = tool("setsid")
        .arg("--wait")
        .arg(BIN)
        .args(["recreate", "-f"])
        .arg(cluster.inventory())
        .arg("-i")
        .arg(&protected)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("protected by a passphrase"), "{stderr}");
    assert!(stderr.contains("no terminal"), "{stderr}");
    assert!(!cluster.bundle().join("nodes/laptop-new").exists());
}

#[test]
fn a_folder_that_is_not_a_bundle_is_never_replaced() {
    let cluster = Cluster::new();
    fs::create_dir_all(cluster.bundle()).unwrap();
    fs::write(cluster.bundle().join("notes.txt"), b"mine").unwrap();
    let out = cluster.run(&["recreate", "-i", operator_key().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a kubepki bundle"));
    assert_eq!(
        fs::read(cluster.bundle().join("notes.txt")).unwrap(),
        b"mine"
    );
}

#[test]
fn a_bad_inventory_exits_non_zero_and_writes_nothing() {
    let cluster = Cluster::new();
    cluster.edit(|t| t.replace("algorithm = \"ecdsa-p256\"", "algorithm = \"dsa-1024\""));
    let before = fs::read(cluster.inventory()).unwrap();
    let out = cluster.run(&["recreate", "-i", operator_key().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!cluster.bundle().exists());
    assert_eq!(fs::read(cluster.inventory()).unwrap(), before);
}

#[test]
fn ca_rotation_publishes_new_and_old_then_only_new_and_reissues_only_that_authoritys_leaves() {
    use kubepki::bundle::TrustBundle;
    use kubepki::issue::{CaCertificate, issue_authority};
    use kubepki::plan::Authority;

    let cluster = Cluster::new();
    cluster.recreate();
    let before = cluster.opened().manifest;
    let inventory = cluster.load();
    let plan = kubepki::plan::plan(&inventory);
    let old_pem = fs::read(cluster.bundle().join("ca/etcd.crt")).unwrap();
    let old = CaCertificate::from_pem_bundle(Authority::Etcd, &old_pem).unwrap();
    let new = issue_authority(
        plan.authority(Authority::Etcd).unwrap(),
        plan.algorithm,
        plan.ca_validity_days,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let mut options = RecreateOptions {
        identities: vec![operator_key()],
        ..RecreateOptions::default()
    };
    options.trust.insert(
        Authority::Etcd,
        TrustBundle {
            signing: new.certificate.clone(),
            key: new.key().clone(),
            also_trusted: old.clone(),
            pending: None,
        },
    );
    let outcome = bundle::recreate(&inventory, &options).unwrap();
    assert!(outcome.written && outcome.pins_recorded);
    let during = cluster.opened();
    during.verify().unwrap();
    let fingerprints = vec![
        new.certificate.fingerprint.clone(),
        old[0].fingerprint.clone(),
    ];
    assert_eq!(
        during.manifest.authorities[&Authority::Etcd].fingerprints,
        fingerprints
    );
    assert_eq!(cluster.load().spec.pki.pins[&Authority::Etcd], fingerprints);
    for certificate in &plan.certificates {
        let FileEntry::Certificate(entry) = &during.manifest.files[&certificate.cert_file] else {
            panic!()
        };
        if certificate.issuer == Authority::Etcd {
            assert_eq!(entry.issuer_fingerprint, new.certificate.fingerprint);
            let ca = cluster.bundle().join("ca/etcd.crt");
            let leaf = cluster.bundle().join(&certificate.cert_file);
            let out = openssl(
                &[
                    "verify",
                    "-CAfile",
                    ca.to_str().unwrap(),
                    leaf.to_str().unwrap(),
                ],
                b"",
            );
            assert!(out.status.success(), "{}", certificate.id);
        } else {
            assert_eq!(
                &during.manifest.files[&certificate.cert_file],
                &before.files[&certificate.cert_file],
                "{} must stay",
                certificate.id
            );
        }
    }
    // The sealed CA key is the new CA's (the first certificate of the trust bundle).
    let key = go_age_decrypt(&operator_key(), &cluster.bundle().join("ca/etcd.key.age")).unwrap();
    let (a, b) = key_and_cert_public_keys(&key, &cluster.bundle().join("ca/etcd.crt"));
    assert_eq!(a, b);

    // The same step again changes nothing; dropping the old CA rewrites only the trust bundle.
    let inventory = cluster.load();
    let again = bundle::recreate(&inventory, &options).unwrap();
    assert!(!again.written, "{:?}", again.changes);
    options
        .trust
        .get_mut(&Authority::Etcd)
        .unwrap()
        .also_trusted
        .clear();
    let finished = bundle::recreate(&inventory, &options).unwrap();
    assert!(finished.written);
    assert!(
        finished
            .changes
            .reissued
            .iter()
            .all(|(id, _)| id == "ca/etcd")
    );
    let after = cluster.opened().manifest;
    assert_eq!(
        after.authorities[&Authority::Etcd].fingerprints,
        vec![new.certificate.fingerprint.clone()]
    );
    assert_eq!(
        CaCertificate::from_pem_bundle(
            Authority::Etcd,
            &fs::read(cluster.bundle().join("ca/etcd.crt")).unwrap()
        )
        .unwrap()
        .len(),
        1
    );
}

/// The spare beside the bundle (the previous bundle, kept so the next run re-links only what
/// changed) is never trusted: every crash point of a run that starts from it still leaves the
/// old bundle or the new one, and the run after it completes.
#[test]
fn a_run_killed_at_any_write_while_reusing_the_spare_leaves_the_old_bundle_or_the_new_one() {
    let spare_of = |cluster: &Cluster| cluster.dir.path().join("hosts/.pki.kubepki-spare");
    let mut crashes = 0;
    for n in 0.. {
        let cluster = Cluster::new();
        cluster.recreate();
        cluster.add_node("laptop-spare", "192.168.0.25");
        cluster.recreate();
        assert!(
            spare_of(&cluster).is_dir(),
            "a commit keeps the old bundle as the spare"
        );
        let old = cluster.opened().manifest;
        cluster.add_node("laptop-new", "192.168.0.24");
        let options = RecreateOptions {
            identities: vec![operator_key()],
            skip_pins: true,
            fault_after_writes: Some(n),
            ..RecreateOptions::default()
        };
        let result = bundle::recreate(&cluster.load(), &options);
        {
            let _lock = BundleLock::acquire(&cluster.bundle()).unwrap();
            let now = Bundle::open(&cluster.bundle()).unwrap();
            now.verify().unwrap();
            assert!(
                now.manifest == old || now.manifest.nodes.contains_key("laptop-new"),
                "step {n}: a crash leaves the old bundle or the new one"
            );
        }
        match result {
            Err(kubepki::Error::Bundle(kubepki::bundle::BundleError::InjectedFault { .. })) => {
                crashes += 1;
                // The next run, spare or not, completes and verifies.
                cluster.recreate();
                let now = cluster.opened();
                now.verify().unwrap();
                assert!(now.manifest.nodes.contains_key("laptop-new"));
            }
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => break,
        }
        assert!(n < 200, "the run never completed");
    }
    assert!(
        crashes > 10,
        "the fault hook must hit the reused-spare run ({crashes} crashes)"
    );
}

#[test]
fn a_tampered_or_stale_spare_never_reaches_the_new_bundle() {
    let cluster = Cluster::new();
    cluster.recreate();
    let spare = cluster.dir.path().join("hosts/.pki.kubepki-spare");
    assert!(spare.is_dir(), "a first bundle gets a spare");
    // Replace (not overwrite: the spare shares inodes with the live bundle) a file, and add junk.
    let victim = spare.join("nodes/laptop-ultra/kubelet-client.crt");
    fs::remove_file(&victim).unwrap();
    fs::write(&victim, "tampered").unwrap();
    fs::create_dir_all(spare.join("nodes/ghost")).unwrap();
    fs::write(spare.join("nodes/ghost/kubelet-client.crt"), "stale").unwrap();
    let live_before = fs::read(
        cluster
            .bundle()
            .join("nodes/laptop-ultra/kubelet-client.crt"),
    )
    .unwrap();

    cluster.add_node("laptop-new", "192.168.0.24");
    cluster.recreate();

    let now = cluster.opened();
    now.verify().unwrap();
    assert_eq!(
        fs::read(
            cluster
                .bundle()
                .join("nodes/laptop-ultra/kubelet-client.crt")
        )
        .unwrap(),
        live_before,
        "an unchanged file comes from the live bundle, not from the spare"
    );
    assert!(
        !cluster.bundle().join("nodes/ghost").exists(),
        "stale spare content is pruned"
    );
    assert!(
        cluster
            .bundle()
            .join("nodes/laptop-new/kubelet-client.crt")
            .is_file()
    );
}

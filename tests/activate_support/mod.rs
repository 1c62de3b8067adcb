//! Test fixture for activation: a bundle written to the manifest contract from the real
//! certificate plan, with the test host keys as recipients, and tools to tamper with it
//! consistently (re-sign, swap a CA, expire a certificate) the way an attacker or a
//! half-finished operator would.
#![allow(dead_code)]

#[path = "../basics/mod.rs"]
mod basics;
pub use basics::*;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kubepki::activate::{Accounts, Pins, Request};
use kubepki::bundle::RecreateOptions;
use kubepki::inventory::Inventory;
use kubepki::plan::{Authority, CertificatePlan, Plan, San, Usage};
use kubepki::seal::Identities;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

pub const UID_KUBERNETES: u32 = 2001;
pub const UID_ETCD: u32 = 2002;

/// Service accounts by a fixed table, so ownership is testable as root without creating users.
pub fn accounts() -> Accounts {
    let table: BTreeMap<String, u32> = [
        ("root".to_string(), 0),
        ("kubernetes".to_string(), UID_KUBERNETES),
        ("etcd".to_string(), UID_ETCD),
    ]
    .into();
    Accounts::Fixed {
        users: table.clone(),
        groups: table,
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Ca {
    key: KeyPair,
    pem: String,
}

pub struct Fixture {
    pub root: TempDir,
    pub bundle: PathBuf,
    pub target: PathBuf,
    pub inventory_path: PathBuf,
    pub plan: Plan,
    /// The pins `recreate` recorded in the inventory's `[pki.pins]`.
    pub pins: Pins,
    pub manifest: Value,
    cas: BTreeMap<Authority, Ca>,
    recipients: BTreeMap<String, String>,
    operator: String,
}

impl Fixture {
    /// The example cluster's bundle, written by the pipeline (`recreate`) into a temporary copy
    /// of hosts/; the CA keys are unsealed with the operator's test key for tampering.
    pub fn new() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let hosts = root.path().join("hosts");
        copy_dir(&repo().join("hosts"), &hosts, &[]);
        let _ = fs::remove_dir_all(hosts.join("pki"));
        let inventory_path = hosts.join("cluster.toml");
        let inventory = Inventory::load(&inventory_path).unwrap();
        let options = RecreateOptions {
            identities: vec![operator_key()],
            ..RecreateOptions::default()
        };
        kubepki::bundle::recreate(&inventory, &options).unwrap();
        let inventory = Inventory::load(&inventory_path).unwrap();
        let pins = inventory
            .spec
            .pki
            .pins
            .iter()
            .map(|(a, fps)| {
                let hex = fps
                    .iter()
                    .map(|f| f.trim_start_matches("sha256:").to_string())
                    .collect();
                (*a, hex)
            })
            .collect();
        let plan = kubepki::plan::plan(&inventory);
        let recipients = inventory
            .host_keys
            .iter()
            .map(|(n, k)| (n.clone(), k.recipient.text.clone()))
            .collect();
        let operator = inventory.operator_recipients["duck"][0].text.clone();
        let bundle = inventory.bundle_dir();
        let manifest: Value =
            serde_json::from_slice(&fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
        let identities = Identities::load(&[operator_key()]).unwrap();
        let mut cas = BTreeMap::new();
        for authority in Authority::ALL {
            let plan = plan.authority(authority).unwrap();
            let sealed = fs::read(bundle.join(&plan.key_file)).unwrap();
            let key_pem = kubepki::seal::unseal(&sealed, &identities).unwrap();
            let key = KeyPair::from_pem(std::str::from_utf8(&key_pem).unwrap()).unwrap();
            let pem = fs::read_to_string(bundle.join(&plan.cert_file)).unwrap();
            cas.insert(authority, Ca { key, pem });
        }
        Fixture {
            target: root.path().join("run/kubepki"),
            root,
            bundle,
            inventory_path,
            manifest,
            plan,
            pins,
            cas,
            recipients,
            operator,
        }
    }

    /// Runs the pipeline's `recreate` again (e.g. `force` to re-issue every leaf), reloads the manifest.
    pub fn recreate(&mut self, options: RecreateOptions) {
        let inventory = Inventory::load(&self.inventory_path).unwrap();
        let options = RecreateOptions {
            identities: vec![operator_key()],
            ..options
        };
        kubepki::bundle::recreate(&inventory, &options).unwrap();
        self.manifest =
            serde_json::from_slice(&fs::read(self.bundle.join("manifest.json")).unwrap()).unwrap();
    }

    /// A request for `node` with its own host key, the pins, the fixture's target and accounts.
    pub fn request(&self, node: &str) -> Request {
        let mut request = Request::new(&self.bundle, node, self.pins.clone());
        request.identities = vec![host_key(node)];
        request.target = self.target.clone();
        request.accounts = accounts();
        request
    }

    /// Adds the current CA of `authority` to its pins (a rotation the operator approved).
    pub fn pin_current(&mut self, authority: Authority) {
        let fp = self.ca_fingerprint(authority);
        self.pins.entry(authority).or_default().push(fp);
    }

    pub fn ca_fingerprint(&self, authority: Authority) -> String {
        let pem = &self.cas[&authority].pem;
        let der = pem_der(pem);
        sha256_hex(&der)
    }

    /// A fresh CA for `authority` (what an attacker would make): trust bundle written, the
    /// manifest's hashes and fingerprints updated to agree with it.
    pub fn new_authority(&mut self, authority: Authority) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, authority.common_name());
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key).unwrap();
        let pem = cert.pem();
        let fingerprint = format!("sha256:{}", sha256_hex(cert.der()));
        let plan = self.plan.authority(authority).unwrap().clone();
        self.write(&plan.cert_file, pem.as_bytes());
        self.manifest["authorities"][authority.name()]["fingerprints"] = json!([fingerprint]);
        self.manifest["files"][&plan.cert_file]["fingerprints"] = json!([fingerprint]);
        self.cas.insert(authority, Ca { key, pem });
    }

    /// Re-signs every leaf issued by `authority` with its current CA (keys renewed too).
    pub fn reissue_all_of(&mut self, authority: Authority) {
        for cert in self.plan.certificates.clone() {
            if cert.issuer == authority {
                self.issue(&cert.id, |_| {});
            }
        }
    }

    /// (Re)issues the leaf `id` with a new key; `tweak` may change its parameters.
    pub fn issue(&mut self, id: &str, tweak: impl FnOnce(&mut CertificateParams)) {
        let cert = self.plan.certificate(id).unwrap().clone();
        let mut params = leaf_params(&cert);
        tweak(&mut params);
        let key = KeyPair::generate().unwrap();
        let ca = &self.cas[&cert.issuer];
        let issuer = Issuer::from_ca_cert_pem(&ca.pem, &ca.key).unwrap();
        let signed = params.signed_by(&key, &issuer).unwrap();
        self.write(&cert.cert_file, signed.pem().as_bytes());
        let mut holders = cert.key_holders.clone();
        holders.extend(cert.node.iter().cloned());
        self.seal(&cert.key_file, key.serialize_pem().as_bytes(), &holders);
    }

    /// Seals `plaintext` to the nodes' host keys and the operator, writes it, records its hash.
    pub fn seal(&mut self, path: &str, plaintext: &[u8], holders: &[String]) {
        let mut texts: Vec<String> = holders.iter().map(|h| self.recipients[h].clone()).collect();
        texts.push(self.operator.clone());
        texts.sort();
        texts.dedup();
        let recipients: Vec<age::ssh::Recipient> =
            texts.iter().map(|t| t.parse().unwrap()).collect();
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .unwrap();
        let mut out = Vec::new();
        let mut writer = encryptor.wrap_output(&mut out).unwrap();
        std::io::Write::write_all(&mut writer, plaintext).unwrap();
        writer.finish().unwrap();
        self.write(path, &out);
    }

    /// Writes a bundle file and records its SHA-256 in the manifest (not saved yet).
    pub fn write(&mut self, path: &str, bytes: &[u8]) {
        let full = self.bundle.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, bytes).unwrap();
        let entry = &mut self.manifest["files"][path];
        assert!(entry.is_object(), "{path} is not in the manifest");
        entry["sha256"] = json!(sha256_hex(bytes));
    }

    /// Writes manifest.json.
    pub fn save(&self) {
        let text = serde_json::to_vec_pretty(&self.manifest).unwrap();
        fs::write(self.bundle.join("manifest.json"), text).unwrap();
    }

    pub fn live(&self) -> PathBuf {
        self.target.join("current")
    }
}

fn pem_der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

fn leaf_params(cert: &CertificatePlan) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, cert.common_name.as_str());
    for o in &cert.organizations {
        params
            .distinguished_name
            .push(DnType::OrganizationName, o.as_str());
    }
    params.subject_alt_names = cert
        .sans
        .iter()
        .map(|s| match s {
            San::Dns(d) => SanType::DnsName(d.as_str().try_into().unwrap()),
            San::Ip(ip) => SanType::IpAddress(*ip),
        })
        .collect();
    params.extended_key_usages = cert
        .usages
        .iter()
        .map(|u| match u {
            Usage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        })
        .collect();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
    params.use_authority_key_identifier_extension = true;
    params
}

/// One entry of a [`snapshot`]: content (or link target), mode, uid, mtime seconds and nanoseconds.
pub type Entry = (Vec<u8>, u32, u32, i64, i64);

/// Everything under a folder: content (or link target), mode, owner and mtime per path.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        let content = if meta.file_type().is_symlink() {
            fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if meta.is_file() {
            fs::read(&path).unwrap()
        } else {
            Vec::new()
        };
        out.insert(
            rel,
            (
                content,
                meta.mode(),
                meta.uid(),
                meta.mtime(),
                meta.mtime_nsec(),
            ),
        );
        if meta.is_dir() {
            walk(root, &path, out);
        }
    }
}

/// Whether the tests can check real ownership.
pub fn root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

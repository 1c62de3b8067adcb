//! Shared helpers for the lifecycle tests: a copy of hosts/ in a git repository, the kubepki
//! binary, and the real consumers (git, openssl, etcd, etcdctl) with a clear message when missing.
#![allow(dead_code)]

#[path = "../basics/mod.rs"]
mod basics;
pub use basics::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temporary git repository holding a copy of the example `hosts/` (without any bundle).
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("hosts"), &dir.path().join("hosts"), &["pki"]);
        // The repository's ignore rules (they hide kubepki's lock and staging folders).
        fs::copy(repo().join(".gitignore"), dir.path().join(".gitignore")).unwrap();
        let ws = Workspace { dir };
        git(ws.root(), &["init", "-q", "-b", "main"]);
        git(ws.root(), &["config", "user.name", "Test Operator"]);
        git(ws.root(), &["config", "user.email", "operator@example.org"]);
        git(ws.root(), &["add", "."]);
        git(ws.root(), &["commit", "-q", "-m", "inventory"]);
        ws
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn inventory(&self) -> PathBuf {
        self.root().join("hosts/cluster.toml")
    }

    pub fn bundle(&self) -> PathBuf {
        self.root().join("hosts/pki")
    }

    /// Runs `kubepki <args> -f <inventory>` in the workspace with the operator test key.
    pub fn kubepki(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kubepki"))
            .args(args)
            .arg("-f")
            .arg(self.inventory())
            .current_dir(self.root())
            .env("HOME", self.root())
            // The operator's key, as an operator would have it; tests of the default paths set HOME.
            .env("AGE_IDENTITY", operator_key())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Like [`kubepki`](Self::kubepki) but asserts success and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubepki(args);
        assert!(
            out.status.success(),
            "kubepki {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn head(&self) -> String {
        git(self.root(), &["rev-parse", "HEAD"]).trim().to_string()
    }

    pub fn edit_inventory(&self, edit: impl FnOnce(&str) -> String) {
        let path = self.inventory();
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, edit(&text)).unwrap();
    }
}

/// Decrypts a sealed bundle file with the Go `age` CLI and the operator test key.
pub fn age_decrypt(file: &Path) -> Vec<u8> {
    let out = tool("age")
        .arg("-d")
        .arg("-i")
        .arg(operator_key())
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `openssl verify -CAfile <trust bundle> <leaf>`; returns whether it verified, and the output.
pub fn openssl_verify(trust_bundle: &Path, leaf: &Path) -> (bool, String) {
    let out = tool("openssl")
        .args(["verify", "-CAfile"])
        .arg(trust_bundle)
        .arg(leaf)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A real etcd on 127.0.0.1 with client-certificate authentication.
pub struct Etcd {
    child: Child,
    pub endpoint: String,
    pub log: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Etcd {
    /// Starts etcd serving `cert`/`key` (plaintext PEM) and trusting `trusted_ca` for clients.
    pub fn start(dir: &Path, cert: &Path, key: &Path, trusted_ca: &Path) -> Etcd {
        let ports = free_ports(2);
        let (client, peer) = (ports[0], ports[1]);
        let endpoint = format!("https://127.0.0.1:{client}");
        let log = dir.join("etcd.log");
        let child = tool("etcd")
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=test=http://127.0.0.1:{peer}"))
            .arg("--client-cert-auth")
            .arg(format!("--cert-file={}", cert.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--trusted-ca-file={}", trusted_ca.display()))
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut etcd = Etcd {
            child,
            endpoint,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = etcd.child.try_wait() {
                panic!(
                    "etcd exited ({status}): {}",
                    fs::read_to_string(&etcd.log).unwrap_or_default()
                );
            }
            if fs::read_to_string(&etcd.log)
                .unwrap_or_default()
                .contains("ready to serve client requests")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become ready: {}",
                fs::read_to_string(&etcd.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    /// `etcdctl put` with a client certificate; returns whether etcd accepted it, and the output.
    pub fn put(&self, ca: &Path, cert: &Path, key: &Path, k: &str, v: &str) -> (bool, String) {
        let out = tool("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .arg(format!("--cacert={}", ca.display()))
            .arg(format!("--cert={}", cert.display()))
            .arg(format!("--key={}", key.display()))
            .arg("--dial-timeout=3s")
            .arg("--command-timeout=5s")
            .args(["put", k, v])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success() && text.contains("OK"), text)
    }
}

/// The example inventory with its laptops replaced by `workers` synthetic workers
/// (`worker-0001`...) on a /16 LAN, all sharing laptop-ultra's host key.
pub fn synthetic_inventory(example: &str, workers: usize) -> String {
    let first_laptop = example
        .find("[[nodes]]\nname = \"laptop-firebat\"")
        .expect("the example inventory lists laptop-firebat after the control plane");
    let mut text = example[..first_laptop].replace(
        "lan_cidrs = [\"192.168.0.0/24\"]",
        "lan_cidrs = [\"192.168.0.0/16\"]",
    );
    for i in 1..=workers {
        text.push_str(&synthetic_worker(i));
    }
    text
}

pub fn synthetic_worker(i: usize) -> String {
    let (hi, lo) = (i / 250, i % 250 + 1);
    format!(
        "[[nodes]]\nname = \"worker-{i:04}\"\nroles = [\"worker\"]\n\
         host_key = \"laptop-ultra/ssh_host_ed25519_key.pub\"\nnode_ip = \"192.168.{hi}.{lo}\"\n\n\
         [nodes.addresses]\nlan = [\"192.168.{hi}.{lo}\"]\ntailnet = [\"100.65.{hi}.{lo}\"]\n\n"
    )
}

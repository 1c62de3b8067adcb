//! Shared by the cache_* tests: a scratch copy of the example cluster, the kubepki
//! binary, and Debian's Nix 2.8 run against a private store under the test's tempdir.

#![allow(dead_code)]

#[path = "../basics/mod.rs"]
mod basics;
pub use basics::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A copy of `hosts/` (cluster.toml and the host public keys) in a fresh tempdir, as it was
/// before `kubepki cache-key`: the example's own `[cache]` table and sealed key are left out.
pub struct Cluster {
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        copy_dir(&repo().join("hosts"), &hosts, &[]);
        let _ = std::fs::remove_dir_all(hosts.join("cache"));
        let inventory = hosts.join("cluster.toml");
        let text = std::fs::read_to_string(&inventory).unwrap();
        let without_cache = match text.find("\n[cache]") {
            // Everything from the table (and its leading comment) to the next table or the end.
            Some(start) => {
                let comment = text[..start].rfind("\n\n").map_or(start, |i| i + 1);
                let rest = &text[start + 1..];
                let end = rest.find("\n[").map_or(text.len(), |i| start + 1 + i + 1);
                format!("{}{}", &text[..comment], &text[end..])
            }
            None => text,
        };
        assert!(!without_cache.contains("[cache]"), "{without_cache}");
        std::fs::write(&inventory, without_cache).unwrap();
        Cluster { dir }
    }

    pub fn inventory(&self) -> PathBuf {
        self.dir.path().join("hosts/cluster.toml")
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Runs kubepki with `-f <this inventory>` appended.
    pub fn kubepki(&self, args: &[&str]) -> Output {
        let inventory = self.inventory();
        let mut all: Vec<&str> = args.to_vec();
        all.push("-f");
        all.push(inventory.to_str().unwrap());
        kubepki(&all)
    }

    /// `kubepki cache-key --url …`, asserting success; returns the public key recorded.
    pub fn create_key(&self) -> String {
        let out = self.kubepki(&[
            "cache-key",
            "--url",
            "s3://ducksnest-cache?region=ap-northeast-2",
        ]);
        assert_success(&out, "kubepki cache-key");
        self.recorded_public_key()
    }

    pub fn recorded_public_key(&self) -> String {
        let text = std::fs::read_to_string(self.inventory()).unwrap();
        let doc: toml::Table = text.parse().unwrap();
        doc["cache"]["public_key"].as_str().unwrap().to_string()
    }

    /// Opens the sealed key with the operator's test key into a file in this tempdir only.
    pub fn decrypted_secret_file(&self) -> PathBuf {
        let out = self.kubepki(&["cache", "secret", "-i", operator_key().to_str().unwrap()]);
        assert_success(&out, "kubepki cache secret");
        let path = self.path("signing.secret");
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }
}

pub fn kubepki(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubepki"))
        .args(args)
        .output()
        .unwrap()
}

pub struct Nix {
    pub store: String,
}

impl Nix {
    pub fn new(root: &Path) -> Nix {
        require_tool("nix");
        require_tool("nix-store");
        Nix {
            store: format!("local?root={}", root.display()),
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("nix")
            .args([
                "--extra-experimental-features",
                "nix-command",
                "--option",
                "substituters",
                "",
            ])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a `nix` subcommand against the private store and returns its trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--store", &self.store]);
        let out = self.run(&all);
        assert_success(&out, &format!("nix {}", args.join(" ")));
        stdout(&out).trim().to_string()
    }

    /// Adds two input-addressed paths, the second referring to the first; returns the second.
    ///
    /// `builtins.toFile` makes content-addressed paths, which Nix trusts without any
    /// signature, so they would make signature checks vacuous. Like the outputs of a
    /// NixOS build, these are input-addressed: made with `toFile` in a scratch store,
    /// copied through an unsigned scratch cache with the `CA:` lines removed.
    pub fn add_pair(&self, tag: &str) -> String {
        let scratch_root = format!(
            "{}-{tag}-scratch",
            self.store.trim_start_matches("local?root=")
        );
        let scratch = Nix {
            store: format!("local?root={scratch_root}"),
        };
        let expr = format!(
            "let a = builtins.toFile \"{tag}-dep\" \"dependency {tag}\"; in builtins.toFile \"{tag}-top\" \"refers to ${{a}}\""
        );
        let path = scratch.ok(&["eval", "--raw", "--expr", &expr]);
        let cache = PathBuf::from(format!("{scratch_root}-cache"));
        scratch.copy_to_cache(&path, &cache, None);
        for entry in std::fs::read_dir(&cache).unwrap() {
            let narinfo = entry.unwrap().path();
            if narinfo.extension().is_some_and(|e| e == "narinfo") {
                let text = std::fs::read_to_string(&narinfo).unwrap();
                let kept: String = text
                    .lines()
                    .filter(|l| !l.starts_with("CA:"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                std::fs::write(&narinfo, kept).unwrap();
            }
        }
        let from = format!("file://{}", cache.display());
        self.ok(&["copy", "--no-check-sigs", "--from", &from, &path]);
        let info = self.ok(&["path-info", "--json", &path]);
        // Nix 2.8 prints an array and omits `ca`; newer releases print an object with `"ca": null`.
        let json: serde_json::Value = serde_json::from_str(&info).unwrap();
        let entries: Vec<&serde_json::Value> = match &json {
            serde_json::Value::Array(items) => items.iter().collect(),
            serde_json::Value::Object(map) => map.values().collect(),
            other => panic!("unexpected path-info output {other}"),
        };
        assert!(!entries.is_empty(), "{info}");
        for entry in entries {
            assert!(
                entry.get("ca").is_none_or(serde_json::Value::is_null),
                "{path} is still content-addressed: {info}"
            );
        }
        path
    }

    /// Copies `path` and its closure into a `file://` binary cache, signed with `secret_key` if given.
    pub fn copy_to_cache(&self, path: &str, cache: &Path, secret_key: Option<&Path>) {
        let mut url = format!("file://{}?compression=zstd", cache.display());
        if let Some(key) = secret_key {
            url.push_str(&format!("&secret-key={}", key.display()));
        }
        self.ok(&["copy", "--to", &url, path]);
    }

    /// `nix-store --generate-binary-cache-key NAME sec pub`: returns (secret file, public key).
    pub fn generate_key(&self, name: &str, dir: &Path) -> (PathBuf, String) {
        let secret = dir.join(format!("{name}.sec"));
        let public = dir.join(format!("{name}.pub"));
        let out = Command::new("nix-store")
            .arg("--generate-binary-cache-key")
            .arg(name)
            .arg(&secret)
            .arg(&public)
            .output()
            .unwrap();
        assert_success(&out, "nix-store --generate-binary-cache-key");
        (
            secret,
            std::fs::read_to_string(public).unwrap().trim().to_string(),
        )
    }
}

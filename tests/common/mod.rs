//! Shared test helpers: a private copy of the example cluster, running the `kubepki` binary,
//! snapshots of a folder tree, and the real tools the tests drive.
//!
//! Tests never touch the repository's own `hosts/`: every test copies
//! `hosts/cluster.toml` and the host key folders into a temp dir and works
//! there. A missing tool is a failure that says how to install it, never a skip.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

#[path = "../basics/mod.rs"]
mod basics;
pub mod tls;

pub use basics::*;

/// A copy of the example cluster (`hosts/cluster.toml` and every host key folder) in a temp dir.
pub struct ExampleCluster {
    pub dir: TempDir,
}

impl ExampleCluster {
    /// The inventory and host keys, without the shipped bundle: tests build their own.
    pub fn copy() -> ExampleCluster {
        Self::copy_hosts(false)
    }

    /// Everything under `hosts/`, including the shipped example bundle `hosts/pki`.
    pub fn copy_with_bundle() -> ExampleCluster {
        Self::copy_hosts(true)
    }

    fn copy_hosts(with_bundle: bool) -> ExampleCluster {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let hosts = repo().join("hosts");
        let target = dir.path().join("hosts");
        fs::create_dir_all(&target).expect("create hosts/");
        fs::copy(hosts.join("cluster.toml"), target.join("cluster.toml"))
            .expect("copy hosts/cluster.toml");
        for entry in fs::read_dir(&hosts).expect("read hosts/") {
            let entry = entry.expect("read hosts/ entry");
            let name = entry.file_name();
            if entry.path().is_dir() && (with_bundle || name != "pki") {
                copy_dir(&entry.path(), &target.join(&name), &[]);
            }
        }
        ExampleCluster { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn inventory(&self) -> PathBuf {
        self.root().join("hosts/cluster.toml")
    }

    /// The bundle folder the example inventory names (`pki`, next to cluster.toml).
    pub fn bundle(&self) -> PathBuf {
        self.root().join("hosts/pki")
    }

    pub fn inventory_text(&self) -> String {
        fs::read_to_string(self.inventory()).expect("read the copied cluster.toml")
    }

    /// Replaces exactly one occurrence of `from` in cluster.toml (panics if it is not there once),
    /// so a test notices when the example inventory changes under it.
    pub fn replace(&self, from: &str, to: &str) {
        self.replace_nth(from, to, 0, 1);
    }

    /// Replaces the `nth` (0-based) of `expected_count` occurrences of `from`.
    pub fn replace_nth(&self, from: &str, to: &str, nth: usize, expected_count: usize) {
        let text = self.inventory_text();
        let found: Vec<usize> = text.match_indices(from).map(|(i, _)| i).collect();
        assert_eq!(
            found.len(),
            expected_count,
            "expected {expected_count} occurrence(s) of {from:?} in the example cluster.toml"
        );
        let at = found[nth];
        let edited = format!("{}{to}{}", &text[..at], &text[at + from.len()..]);
        fs::write(self.inventory(), edited).expect("write the copied cluster.toml");
    }

    /// 1-based line and column of `needle` in the `nth` (0-based) line containing `line_marker`.
    pub fn position(&self, line_marker: &str, nth: usize, needle: &str) -> (usize, usize) {
        let text = self.inventory_text();
        let (index, line) = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(line_marker))
            .nth(nth)
            .unwrap_or_else(|| panic!("no line #{nth} containing {line_marker:?}"));
        let column = line
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in line {line:?}"));
        (index + 1, line[..column].chars().count() + 1)
    }

    /// Runs `kubepki` in the cluster's root folder.
    pub fn kubepki(&self, args: &[&str]) -> Output {
        kubepki_in(self.root(), args)
    }

    /// Every file and folder under the root with its content and mode.
    pub fn snapshot(&self) -> Tree {
        Tree::of(self.root())
    }
}

/// Runs the `kubepki` binary built for this test run.
pub fn kubepki_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubepki"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run kubepki")
}

/// A folder tree: relative path -> (mode, content; `None` for folders).
#[derive(Debug, PartialEq, Eq)]
pub struct Tree(pub BTreeMap<PathBuf, (u32, Option<Vec<u8>>)>);

impl Tree {
    pub fn of(root: &Path) -> Tree {
        let mut entries = BTreeMap::new();
        walk(root, root, &mut entries);
        Tree(entries)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, Option<Vec<u8>>)>) {
    let mut children: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    children.sort();
    for path in children {
        let meta = fs::symlink_metadata(&path).expect("stat");
        let relative = path.strip_prefix(root).expect("under root").to_path_buf();
        let mode = meta.permissions().mode();
        if meta.is_dir() {
            out.insert(relative, (mode, None));
            walk(root, &path, out);
        } else {
            // Unreadable entries (a directory where a file should be is handled above) are
            // recorded by mode only.
            out.insert(relative, (mode, fs::read(&path).ok()));
        }
    }
}

/// Decrypts a sealed bundle file with the Go `age` CLI into `out` (inside a test temp dir).
pub fn age_decrypt(identity: &Path, sealed: &Path, out: &Path) {
    let output = run(
        "age",
        &[
            "--decrypt",
            "-i",
            identity.to_str().expect("utf-8 path"),
            "-o",
            out.to_str().expect("utf-8 path"),
            sealed.to_str().expect("utf-8 path"),
        ],
    );
    assert_success(&output, &format!("age --decrypt {}", sealed.display()));
}

impl ExampleCluster {
    /// Runs `kubepki recreate` with the operator's test identity and asserts it succeeded.
    pub fn recreate(&self) {
        let inventory = self.inventory();
        let identity = operator_key();
        let output = self.kubepki(&[
            "recreate",
            "-f",
            inventory.to_str().expect("utf-8 temp path"),
            "-i",
            identity.to_str().expect("utf-8 repo path"),
        ]);
        assert_success(&output, "kubepki recreate");
    }

    /// The example inventory, loaded by the library.
    pub fn load(&self) -> kubepki::inventory::Inventory {
        kubepki::inventory::Inventory::load(&self.inventory()).expect("the example inventory loads")
    }

    /// Installs `node`'s files from the bundle into `dir` under their install names, as
    /// activation would, decrypting secrets with the node's own test host key through Go `age`.
    pub fn install_node(&self, plan: &kubepki::plan::Plan, node: &str, dir: &Path) {
        use kubepki::plan::Part;
        fs::create_dir_all(dir).expect("create install dir");
        let node_plan = plan
            .node(node)
            .unwrap_or_else(|| panic!("no node {node} in plan"));
        let identity = host_key(node);
        for file in &node_plan.files {
            let source = self.bundle().join(&file.source);
            let target = dir.join(&file.install);
            match file.part {
                Part::Secret => age_decrypt(&identity, &source, &target),
                _ => {
                    fs::copy(&source, &target)
                        .unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
                }
            }
        }
    }
}

/// A child process that is killed when the guard goes out of scope, even on a failed assertion.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

/// The repository root (where Cargo.toml is).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A test key from `tests/keys/`, e.g. `test_key("operator/id_ed25519")`.
pub fn test_key(relative: &str) -> PathBuf {
    repo().join("tests/keys").join(relative)
}

/// The operator's test SSH identity; its public half is the recipient in the example inventory.
pub fn operator_identity() -> PathBuf {
    test_key("operator/id_ed25519")
}

/// Panics with how to install `tool` unless it is on PATH.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths).any(|dir| {
                fs::metadata(dir.join(tool))
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false);
    assert!(found, "install {tool} (see .ci/run)");
}

/// A copy of the example cluster (`hosts/cluster.toml` and every host key folder) in a temp dir.
pub struct ExampleCluster {
    pub dir: TempDir,
}

impl ExampleCluster {
    pub fn copy() -> ExampleCluster {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let hosts = repo().join("hosts");
        let target = dir.path().join("hosts");
        fs::create_dir_all(&target).expect("create hosts/");
        fs::copy(hosts.join("cluster.toml"), target.join("cluster.toml"))
            .expect("copy hosts/cluster.toml");
        for entry in fs::read_dir(&hosts).expect("read hosts/") {
            let entry = entry.expect("read hosts/ entry");
            let name = entry.file_name();
            // Host key folders only: the bundle (hosts/pki) is what the tests create.
            if entry.path().is_dir() && name != "pki" {
                copy_dir(&entry.path(), &target.join(&name));
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

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the command succeeded, showing its output if not.
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// Runs a tool (which must be installed) and returns its output.
pub fn run(tool: &str, args: &[&str]) -> Output {
    require_tool(tool);
    Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"))
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

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            fs::copy(&path, to.join(entry.file_name())).expect("copy file");
        }
    }
}

/// Picks a TCP port on 127.0.0.1 that is free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

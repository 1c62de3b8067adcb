//! What every test crate needs: the repository and its TEST keys, the real tools the tests
//! drive (a missing one fails with the Debian package to install, never skips), reading a
//! command's output, copying a folder, and free ports.
//!
//! The support modules (`common`, `activate_support`, `cache_support`, `lifecycle_support`,
//! `nix_support`) re-export it; a test file without one declares `mod basics;`.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (where Cargo.toml is).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A test key from `tests/keys/`, e.g. `test_key("operator/id_ed25519")`.
pub fn test_key(relative: &str) -> PathBuf {
    repo().join("tests/keys").join(relative)
}

/// The operator's TEST SSH identity; its public half is the recipient in the example inventory.
pub fn operator_key() -> PathBuf {
    test_key("operator/id_ed25519")
}

/// The private half of `node`'s TEST host key (`tests/keys/<node>/ssh_host_{ed25519,rsa}_key`).
pub fn host_key(node: &str) -> PathBuf {
    let dir = test_key(node);
    ["ssh_host_ed25519_key", "ssh_host_rsa_key"]
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("no test host key for {node} in {}", dir.display()))
}

/// The Debian package `.ci/run` installs `tool` from.
fn package_of(tool: &str) -> &str {
    match tool {
        "age" | "age-keygen" => "age",
        "etcd" => "etcd-server",
        "etcdctl" => "etcd-client",
        "nix" | "nix-instantiate" | "nix-store" => "nix-bin",
        "ssh-keygen" => "openssh-client",
        "setsid" => "util-linux",
        "kubectl" => "kubectl (it ships with the CI image)",
        other => other,
    }
}

/// Panics with how to install `tool` unless it is an executable on PATH.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    assert!(
        found,
        "`{tool}` is missing: install {} (see .ci/run)",
        package_of(tool)
    );
}

/// A command for a real tool, which must be installed.
pub fn tool(name: &str) -> Command {
    require_tool(name);
    Command::new(name)
}

/// Runs a tool (which must be installed) and returns its output.
pub fn run(name: &str, args: &[&str]) -> Output {
    tool(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"))
}

/// Runs `git <args>` in `dir`, asserting success; returns its standard output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = tool("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert_success(&out, &format!("git {args:?}"));
    stdout(&out)
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

/// Copies folder `from` to `to`, leaving out the top-level names in `skip`.
pub fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target, &[]);
        } else {
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// `n` distinct TCP ports on 127.0.0.1 that are free right now (all held until all are chosen).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

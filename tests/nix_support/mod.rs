//! Shared by the `nix_*` tests: running Debian's Nix 2.8 (`nix-instantiate`),
//! and a bundle fixture built from the real certificate plan.
//!
//! The fixture is what the NixOS modules read from a bundle: `manifest.json`
//! with the plan's per-node section (`nodes.<node>` = NodePlan), and a copy of
//! the inventory with CA pins. It holds no certificate or key; the modules never
//! read those at evaluation time.

#![allow(dead_code)]

#[path = "../basics/mod.rs"]
mod basics;
pub use basics::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use kubepki::inventory::Inventory;
use kubepki::plan::plan;

pub fn example_inventory() -> PathBuf {
    repo().join("hosts/cluster.toml")
}

/// `nix-instantiate`, or a failure telling how to get it.
pub fn nix_instantiate() -> Command {
    let probe = Command::new("nix-instantiate").arg("--version").output();
    match probe {
        Ok(out) if out.status.success() => {}
        _ => panic!("nix-instantiate is not available: install nix-bin (see .ci/run)"),
    }
    let mut cmd = Command::new("nix-instantiate");
    cmd.current_dir(repo());
    cmd
}

/// Evaluates a Nix expression strictly and returns its JSON value; panics with Nix's message.
pub fn eval_json(expr: &str) -> serde_json::Value {
    let out = eval(expr);
    match out {
        Ok(json) => json,
        Err(stderr) => panic!("nix-instantiate failed on\n{expr}\n---\n{stderr}"),
    }
}

/// Evaluates a Nix expression strictly; `Err` carries Nix's error output.
pub fn eval(expr: &str) -> Result<serde_json::Value, String> {
    let out = nix_instantiate()
        .args(["--eval", "--strict", "--json", "-E", expr])
        .output()
        .expect("run nix-instantiate");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("nix-instantiate printed JSON"))
}

/// A Nix string literal.
pub fn nix_str(s: &str) -> String {
    serde_json::to_string(s)
        .expect("a string serialises")
        .replace("${", "\\${")
}

/// Writes `dir/cluster.toml` (the example inventory with the fixture's CA pins) and
/// `dir/pki/manifest.json` (format 1, the plan's node sections). Returns the inventory path.
pub fn bundle_fixture(dir: &Path) -> PathBuf {
    let source = example_inventory();
    let inventory = Inventory::load(&source).expect("the example inventory loads");
    let plan = plan(&inventory);
    let nodes: serde_json::Map<String, serde_json::Value> = plan
        .nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                serde_json::to_value(n).expect("a node plan serialises"),
            )
        })
        .collect();
    let manifest = serde_json::json!({
        "format": 1,
        "cluster": plan.cluster,
        "algorithm": plan.algorithm,
        "authorities": {},
        "files": {},
        "nodes": nodes,
    });
    std::fs::create_dir_all(dir.join("pki")).expect("create the fixture bundle dir");
    std::fs::write(
        dir.join("pki/manifest.json"),
        serde_json::to_vec_pretty(&manifest).expect("manifest serialises"),
    )
    .expect("write the fixture manifest");

    // The example's own pins (if recreate recorded them) give way to the fixture's.
    let example = std::fs::read_to_string(&source).expect("read the example inventory");
    let mut toml = String::new();
    let mut in_pins = false;
    for line in example.lines() {
        if line.trim() == "[pki.pins]" {
            in_pins = true;
        } else if in_pins && (line.trim().is_empty() || line.starts_with('[')) {
            in_pins = false;
        }
        if !in_pins {
            toml.push_str(line);
            toml.push('\n');
        }
    }
    {
        toml.push_str(&format!(
            "\n[pki.pins]\nkubernetes = [\"sha256:{k}\"]\netcd = [\"sha256:{e}\"]\nfront-proxy = [\"sha256:{f}\", \"sha256:{k}\"]\n",
            k = "1".repeat(64),
            e = "2".repeat(64),
            f = "3".repeat(64),
        ));
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, toml).expect("write the fixture inventory");
    path
}

//! `kubepki plan` and `kubepki recreate`: show the plan and what would change; bring the bundle in line.

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::InventoryArg;
use crate::bundle::{self, Changes, RecreateOptions};
use crate::inventory::Inventory;

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// The bundle folder (default: `pki.bundle` of the inventory).
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Print the plan (and the pending changes) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Loads the inventory and applies `--bundle`.
fn load(inventory: &InventoryArg, bundle: &Option<PathBuf>) -> Result<Inventory, crate::Error> {
    let mut loaded = Inventory::load(&inventory.inventory)?;
    if let Some(dir) = bundle {
        loaded.spec.pki.bundle = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
    }
    Ok(loaded)
}

pub fn run_plan(args: &PlanArgs) -> Result<ExitCode, crate::Error> {
    let inventory = load(&args.inventory, &args.bundle)?;
    let plan = crate::plan::plan(&inventory);
    let (bundle, changes) = bundle::pending_changes(&inventory, &RecreateOptions::default())?;
    if args.json {
        let value = serde_json::json!({
            "plan": plan,
            "bundle": inventory.bundle_dir(),
            "changes": bundle.as_ref().map(|_| &changes),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", crate::plan::render_text(&plan));
    match bundle {
        None => println!(
            "\nno bundle at {} yet: `kubepki recreate` creates everything.",
            inventory.bundle_dir().display()
        ),
        Some(_) => print!("\n{}", render_changes(&changes)),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct RecreateArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// The bundle folder (default: `pki.bundle` of the inventory).
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// An identity that decrypts the CA keys (SSH private key or age identity file); repeatable.
    /// Default: $AGE_IDENTITY, ~/.ssh/id_ed25519, ~/.ssh/id_rsa, ~/.config/age/keys.txt.
    #[arg(long = "identity", short = 'i')]
    pub identities: Vec<PathBuf>,
    /// Re-issue every leaf certificate (the CAs stay).
    #[arg(long)]
    pub force: bool,
}

pub fn run_recreate(args: &RecreateArgs) -> Result<ExitCode, crate::Error> {
    let inventory = load(&args.inventory, &args.bundle)?;
    let options = RecreateOptions {
        force: args.force,
        identities: args.identities.clone(),
        ..RecreateOptions::default()
    };
    let outcome = bundle::recreate(&inventory, &options)?;
    if outcome.written {
        print!("{}", render_changes(&outcome.changes));
        println!("wrote {}", outcome.bundle_dir.display());
    } else {
        println!(
            "nothing to do: {} is up to date.",
            outcome.bundle_dir.display()
        );
    }
    if outcome.pins_recorded {
        println!(
            "recorded the CA pins in {} [pki.pins]; commit it with the bundle.",
            inventory.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A plain listing of what changes; `kubepki plan` and `recreate` print it.
pub fn render_changes(changes: &Changes) -> String {
    let mut out = String::new();
    if changes.is_empty() {
        let _ = writeln!(out, "no changes: the bundle matches the inventory.");
        return out;
    }
    for id in &changes.added {
        let _ = writeln!(out, "  + {id} (new)");
    }
    for (id, reason) in &changes.reissued {
        let _ = writeln!(out, "  ~ {id} (re-issue: {reason})");
    }
    for id in &changes.resealed {
        let _ = writeln!(out, "  ~ {id} (re-seal: recipients changed)");
    }
    for path in &changes.removed {
        let _ = writeln!(out, "  - {path} (no longer planned)");
    }
    if changes.manifest_changed {
        let _ = writeln!(out, "  ~ manifest.json (node install description changed)");
    }
    let _ = writeln!(
        out,
        "{} new, {} re-issued, {} re-sealed, {} removed, {} unchanged",
        changes.added.len(),
        changes.reissued.len(),
        changes.resealed.len(),
        changes.removed.len(),
        changes.kept.len()
    );
    out
}

//! `kubepki plan` and `kubepki recreate`: show the plan and what would change; bring the bundle in line.

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::InventoryArg;
use crate::bundle::{self, Changes, RecreateOptions};
use crate::inventory::Inventory;
use crate::lifecycle::rotation::{self, Rotation};

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
    #[command(flatten)]
    pub rotation: RotationArgs,
    /// Decide as of this time (RFC 3339) instead of now (tests, "what will be due").
    #[arg(long, hide = true)]
    pub now: Option<String>,
}

/// `--rotate-ca` / `--sign-with-new-ca` / `--finish-ca-rotation`: the three steps of a CA
/// rotation, each followed by a deployment of every node (docs/ca-rotation.md).
#[derive(Debug, Clone, Args)]
pub struct RotationArgs {
    /// CA rotation step 1 of 3: new CAs join the trust bundles and the pins; the old CAs still
    /// sign and no leaf changes. Deploy every node, then `--sign-with-new-ca`.
    #[arg(long, conflicts_with_all = ["sign_with_new_ca", "finish_ca_rotation"])]
    pub rotate_ca: bool,
    /// CA rotation step 2 of 3: the new CAs (trusted since step 1) sign; every leaf is re-issued.
    /// Deploy every node, then `--finish-ca-rotation`.
    #[arg(long, conflicts_with = "finish_ca_rotation")]
    pub sign_with_new_ca: bool,
    /// CA rotation step 3 of 3, once every node runs leaves of the new CA: drop the old CA from
    /// trust bundles and pins.
    #[arg(long)]
    pub finish_ca_rotation: bool,
}

impl RotationArgs {
    pub fn step(&self) -> Option<Rotation> {
        if self.rotate_ca {
            Some(Rotation::Start)
        } else if self.sign_with_new_ca {
            Some(Rotation::Sign)
        } else if self.finish_ca_rotation {
            Some(Rotation::Finish)
        } else {
            None
        }
    }
}

/// `--no-commit` / `--push`: what happens in git after the bundle is written.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// Write the bundle but do not commit it (review with `git status` / `git diff`).
    #[arg(long, conflicts_with = "push")]
    pub no_commit: bool,
    /// Push the current branch to its upstream after committing (ssh-agent or credential helper).
    #[arg(long)]
    pub push: bool,
}

impl PublishArgs {
    pub fn options(&self) -> crate::publish::PublishOptions {
        crate::publish::PublishOptions {
            commit: !self.no_commit,
            push: self.push,
        }
    }
}

/// Loads the inventory and applies `--bundle`.
fn load(inventory: &InventoryArg, bundle: &Option<PathBuf>) -> Result<Inventory, crate::Error> {
    Ok(load_elsewhere(inventory, bundle)?.0)
}

/// Like [`load`], and says whether `--bundle` points away from the inventory's own bundle:
/// such a run (a demo, a dry copy) must not rewrite the inventory's pins or commit.
fn load_elsewhere(
    inventory: &InventoryArg,
    bundle: &Option<PathBuf>,
) -> Result<(Inventory, bool), crate::Error> {
    let mut loaded = Inventory::load(&inventory.inventory)?;
    let own = std::path::absolute(loaded.bundle_dir()).unwrap_or_else(|_| loaded.bundle_dir());
    let mut elsewhere = false;
    if let Some(dir) = bundle {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        elsewhere = dir != own;
        loaded.spec.pki.bundle = dir;
    }
    Ok((loaded, elsewhere))
}

pub fn run_plan(args: &PlanArgs) -> Result<ExitCode, crate::Error> {
    let inventory = load(&args.inventory, &args.bundle)?;
    let plan = crate::plan::plan(&inventory);
    let options = RecreateOptions {
        now: args
            .now
            .as_deref()
            .map(|t| crate::lifecycle::parse_now(Some(t)))
            .transpose()?,
        ..RecreateOptions::default()
    };
    let step = args.rotation.step();
    let (bundle, changes) = match step {
        None => bundle::pending_changes(&inventory, &options)?,
        Some(step) => {
            // A preview of the rotation: fingerprints only, no CA is issued or unsealed.
            let current = bundle::Bundle::open_if_exists(&inventory.bundle_dir())?;
            let manifest = current.as_ref().map(|b| &b.manifest);
            rotation::check_step(step, manifest, &inventory.bundle_dir())
                .map_err(crate::lifecycle::LifecycleError::from)?;
            let change_options = bundle::ChangeOptions {
                renew_before_days: inventory.spec.pki.renew_before_days,
                trust: manifest
                    .map(|m| rotation::preview_trust(step, m))
                    .unwrap_or_default(),
                ..Default::default()
            };
            let keyring = crate::seal::Keyring::from_inventory(&inventory)?;
            let now = options.now.unwrap_or_else(time::OffsetDateTime::now_utc);
            let changes = bundle::compute(&plan, manifest, &keyring, now, &change_options);
            (current, changes)
        }
    };
    let diff = crate::lifecycle::diff::lines_for(&plan, &changes, step);
    // The network lint runs with every plan: a cluster that would black-hole packets is a bad plan.
    let findings = crate::calico::lint::lint(&inventory);
    let status = if findings.iter().any(crate::calico::lint::Finding::is_error) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if args.json {
        let value = serde_json::json!({
            "plan": plan,
            "bundle": inventory.bundle_dir(),
            "changes": bundle.as_ref().map(|_| &changes),
            "diff": crate::lifecycle::diff::to_json(&diff),
            "lint": findings,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(status);
    }
    print!("{}", crate::plan::render_text(&plan));
    match bundle {
        None => println!(
            "\nno bundle at {} yet: `kubepki recreate` creates everything.",
            inventory.bundle_dir().display()
        ),
        Some(_) => print!(
            "\n{}",
            crate::lifecycle::diff::render(&diff, crate::lifecycle::stdout_is_terminal())
        ),
    }
    if !findings.is_empty() {
        println!("\nnetwork lint (`kubepki lint` explains each):");
        for finding in &findings {
            println!("{finding}");
        }
    }
    Ok(status)
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
    #[command(flatten)]
    pub rotation: RotationArgs,
    #[command(flatten)]
    pub publish: PublishArgs,
    /// Issue as of this time (RFC 3339) instead of now (tests).
    #[arg(long, hide = true)]
    pub now: Option<String>,
}

pub fn run_recreate(args: &RecreateArgs) -> Result<ExitCode, crate::Error> {
    let (inventory, elsewhere) = load_elsewhere(&args.inventory, &args.bundle)?;
    let mut options = RecreateOptions {
        skip_pins: elsewhere,
        force: args.force,
        identities: args.identities.clone(),
        now: args
            .now
            .as_deref()
            .map(|t| crate::lifecycle::parse_now(Some(t)))
            .transpose()?,
        ..RecreateOptions::default()
    };
    let dir = inventory.bundle_dir();
    let step = args.rotation.step();
    if let Some(step) = step {
        let current = bundle::Bundle::open_if_exists(&dir)?;
        rotation::check_step(step, current.as_ref().map(|b| &b.manifest), &dir)
            .map_err(crate::lifecycle::LifecycleError::from)?;
        if let Some(current) = &current {
            let now = options.now.unwrap_or_else(time::OffsetDateTime::now_utc);
            let plan = crate::plan::plan(&inventory);
            options.trust =
                rotation::trust_bundles(step, current, &plan, &options.identities, now)?;
        }
    }
    let publish = if elsewhere {
        None
    } else {
        crate::lifecycle::prepare_publish(&inventory, args.publish.options())?
    };
    if publish.is_none() && !args.publish.no_commit && !elsewhere {
        eprintln!(
            "note: {} is not inside a git repository: the bundle is written but not committed.",
            inventory.path.display()
        );
    }
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
    if elsewhere && outcome.written {
        // The pins belong to this bundle, not to the one the inventory names: show, don't record.
        if let Ok(written) = bundle::Bundle::open(&outcome.bundle_dir) {
            println!(
                "{} is not the inventory's bundle: its CA pins were not recorded in {} and nothing was committed:",
                outcome.bundle_dir.display(),
                inventory.path.display()
            );
            for (authority, entry) in &written.manifest.authorities {
                println!("  {authority} = {:?}", entry.fingerprints);
            }
        }
    }
    if outcome.pins_recorded {
        println!(
            "recorded the CA pins in {} [pki.pins]; commit it with the bundle.",
            inventory.path.display()
        );
    }
    if let Some(publish) = publish {
        let published = crate::lifecycle::publish_run(&inventory, &outcome, step, publish)?;
        println!("{}", crate::lifecycle::describe_published(&published));
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
    // Any file change rewrites the manifest anyway; say so only when it is the whole change.
    let files_changed = !(changes.added.is_empty()
        && changes.reissued.is_empty()
        && changes.resealed.is_empty()
        && changes.removed.is_empty());
    if changes.manifest_changed && !files_changed {
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

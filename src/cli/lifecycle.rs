//! `kubepki check` and `kubepki renew`: the certificate lifecycle.

use std::process::ExitCode;

use clap::Args;

use super::InventoryArg;
use crate::inventory::Inventory;
use crate::lifecycle::{self, LifecycleError};

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Assess as of this time (RFC 3339) instead of now; for tests and "what will be due" questions.
    #[arg(long, hide = true)]
    pub now: Option<String>,
}

/// Prints the expiry report; exits 1 when anything is missing, expired or inside the renewal window.
pub fn run_check(args: &CheckArgs) -> Result<ExitCode, crate::Error> {
    let inventory = Inventory::load(&args.inventory.inventory)?;
    let now = lifecycle::parse_now(args.now.as_deref())?;
    let plan = crate::plan::plan(&inventory);
    let report = lifecycle::examine(
        &inventory.bundle_dir(),
        &plan,
        inventory.spec.pki.renew_before_days,
        now,
    )
    .map_err(LifecycleError::from)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!(
            "{}",
            lifecycle::check::render(&report, lifecycle::stdout_is_terminal())
        );
    }
    Ok(if report.needs_attention() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Certificates to re-issue: ids (`nodes/laptop-ultra/kubelet-client`), material names
    /// (`apiserver`) or node names.
    #[arg(value_name = "NAME", required_unless_present = "all")]
    pub names: Vec<String>,
    /// Re-issue every leaf certificate.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// Generate new private keys too (default: keep each certificate's key).
    #[arg(long)]
    pub new_keys: bool,
    /// An identity that decrypts the CA keys and the keys kept (SSH private key or age identity
    /// file); repeatable. Default: $AGE_IDENTITY, ~/.ssh/id_ed25519, ~/.ssh/id_rsa, ~/.config/age/keys.txt.
    #[arg(long = "identity", short = 'i')]
    pub identities: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub publish: super::recreate::PublishArgs,
    /// Issue as of this time (RFC 3339) instead of now (tests).
    #[arg(long, hide = true)]
    pub now: Option<String>,
}

/// Re-issues the named leaves (keys kept unless --new-keys), then commits like `recreate`.
/// Whatever else the inventory changed since the last run is applied too, and listed.
pub fn run_renew(args: &RenewArgs) -> Result<ExitCode, crate::Error> {
    let inventory = Inventory::load(&args.inventory.inventory)?;
    let plan = crate::plan::plan(&inventory);
    let renew =
        lifecycle::renew::select(&plan, &args.names, args.all).map_err(LifecycleError::from)?;
    let options = crate::bundle::RecreateOptions {
        identities: args.identities.clone(),
        renew,
        keep_keys: !args.new_keys,
        now: args
            .now
            .as_deref()
            .map(|t| lifecycle::parse_now(Some(t)))
            .transpose()?,
        ..Default::default()
    };
    let publish = lifecycle::prepare_publish(&inventory, args.publish.options())?;
    if publish.is_none() && !args.publish.no_commit {
        eprintln!(
            "note: {} is not inside a git repository: the bundle is written but not committed.",
            inventory.path.display()
        );
    }
    let outcome = crate::bundle::recreate(&inventory, &options)?;
    let diff = lifecycle::diff::lines(&plan, &outcome.changes);
    print!(
        "{}",
        lifecycle::diff::render(&diff, lifecycle::stdout_is_terminal())
    );
    if let Some(publish) = publish {
        let published = lifecycle::publish_run(&inventory, &outcome, None, publish)?;
        println!("{}", lifecycle::describe_published(&published));
    }
    Ok(ExitCode::SUCCESS)
}

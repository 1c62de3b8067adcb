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
}

pub fn run_renew(_args: &RenewArgs) -> Result<ExitCode, crate::Error> {
    Err(crate::Error::NotYet("renew"))
}

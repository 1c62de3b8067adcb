//! `kubepki recreate`: plan and recreate: issue, seal and write the bundle.

use std::process::ExitCode;

use clap::Args;

use super::InventoryArg;

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
}

pub fn run_plan(_args: &PlanArgs) -> Result<ExitCode, crate::Error> {
    Err(crate::Error::NotYet("plan"))
}

#[derive(Debug, Args)]
pub struct RecreateArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
}

pub fn run_recreate(_args: &RecreateArgs) -> Result<ExitCode, crate::Error> {
    Err(crate::Error::NotYet("recreate"))
}

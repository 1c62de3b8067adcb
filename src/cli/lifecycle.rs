//! `kubepki lifecycle`: check and renew: the certificate lifecycle.

use std::process::ExitCode;

use clap::Args;

use super::InventoryArg;

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
}

pub fn run_check(_args: &CheckArgs) -> Result<ExitCode, crate::Error> {
    Err(crate::Error::NotYet("check"))
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
}

pub fn run_renew(_args: &RenewArgs) -> Result<ExitCode, crate::Error> {
    Err(crate::Error::NotYet("renew"))
}

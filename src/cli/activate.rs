//! `kubepki activate`: install a node's material from the bundle.

use std::process::ExitCode;

use clap::Args;

use super::InventoryArg;

#[derive(Debug, Args)]
pub struct ActivateArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
}

pub fn run_activate(_args: &ActivateArgs) -> Result<ExitCode, crate::Error> {
    Err(crate::Error::NotYet("activate"))
}

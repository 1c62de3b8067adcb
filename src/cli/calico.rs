//! `kubepki calico`: Calico manifests and the network lint.

use std::process::ExitCode;

use clap::Args;

use super::InventoryArg;

#[derive(Debug, Args)]
pub struct CalicoArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
}

pub fn run_calico(_args: &CalicoArgs) -> Result<ExitCode, crate::Error> {
    Err(crate::Error::NotYet("calico"))
}

#[derive(Debug, Args)]
pub struct LintArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
}

pub fn run_lint(_args: &LintArgs) -> Result<ExitCode, crate::Error> {
    Err(crate::Error::NotYet("lint"))
}

//! `kubepki kubeconfig`: kubeconfigs for operators.

use std::process::ExitCode;

use clap::Args;

use super::InventoryArg;

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
}

pub fn run_kubeconfig(_args: &KubeconfigArgs) -> Result<ExitCode, crate::Error> {
    Err(crate::Error::NotYet("kubeconfig"))
}

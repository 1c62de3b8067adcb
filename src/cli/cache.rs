//! `kubepki cache`: the signed Nix binary cache.

use std::process::ExitCode;

use clap::Args;

use super::InventoryArg;

#[derive(Debug, Args)]
pub struct CacheKeyArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
}

pub fn run_cache_key(_args: &CacheKeyArgs) -> Result<ExitCode, crate::Error> {
    Err(crate::Error::NotYet("cache_key"))
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
}

pub fn run_cache(_args: &CacheArgs) -> Result<ExitCode, crate::Error> {
    Err(crate::Error::NotYet("cache"))
}

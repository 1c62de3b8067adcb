//! `kubepki inventory`: the inventory as the tool understands it, as JSON.

use std::process::ExitCode;

use clap::Args;

use super::InventoryArg;
use crate::inventory::Inventory;

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
}

pub fn run(args: &InventoryArgs) -> Result<ExitCode, crate::Error> {
    let inventory = Inventory::load(&args.inventory.inventory)?;
    let json = serde_json::to_string_pretty(&inventory.spec)?;
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}

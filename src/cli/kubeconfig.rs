//! `kubepki kubeconfig admin|super-admin`: print a self-contained kubeconfig for an operator.
//!
//! The key is unsealed in memory with the operator's identity and printed on
//! stdout only; nothing is written to disk.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::InventoryArg;
use crate::inventory::Inventory;
use crate::kubeconfig::operator::{KubeconfigError, OperatorUser, operator_kubeconfig, server_url};
use crate::seal::Identities;

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Which credentials: `admin` (RBAC cluster-admin, revocable) or `super-admin` (system:masters, break-glass).
    #[arg(value_enum)]
    pub user: OperatorUser,
    /// The operator's private key (SSH or age identity file); repeatable. Default: $AGE_IDENTITY,
    /// ~/.ssh/id_ed25519, ~/.ssh/id_rsa, ~/.config/age/keys.txt.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
    /// The API server URL to dial, instead of the inventory's first `api.endpoints` entry.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The bundle folder (default: `pki.bundle` of the inventory).
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
}

pub fn run_kubeconfig(args: &KubeconfigArgs) -> Result<ExitCode, crate::Error> {
    let mut inventory = Inventory::load(&args.inventory.inventory)?;
    if let Some(dir) = &args.bundle {
        inventory.spec.pki.bundle = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
    }
    let server = server_url(&inventory, args.server.as_deref())?;
    let identities = Identities::load_or_default(&args.identities)?;
    let kubeconfig = operator_kubeconfig(&inventory, args.user, &identities, &server)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(kubeconfig.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| KubeconfigError::Print {
            reason: e.to_string(),
        })?;
    Ok(ExitCode::SUCCESS)
}

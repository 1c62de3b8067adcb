//! The command line: clap definitions only. Each command's body lives in its own file here and
//! calls into the library; nothing in `cli` knows how certificates or manifests work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod activate;
pub mod cache;
pub mod calico;
pub mod inventory;
pub mod kubeconfig;
pub mod lifecycle;
pub mod recreate;

/// The whole PKI and bootstrap of a NixOS-managed Kubernetes cluster, from one inventory.
#[derive(Debug, Parser)]
#[command(name = "kubepki", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the inventory is; shared by every command that reads it.
#[derive(Debug, Clone, Args)]
pub struct InventoryArg {
    /// The cluster inventory.
    #[arg(long, short = 'f', default_value = "hosts/cluster.toml", global = true)]
    pub inventory: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what recreate would do: every certificate per node, and what changed.
    Plan(recreate::PlanArgs),
    /// Issue, seal and write the bundle; only what changed is touched.
    Recreate(recreate::RecreateArgs),
    /// Expiry of every certificate and CA; non-zero exit when any is inside the renewal window.
    Check(lifecycle::CheckArgs),
    /// Re-issue leaf certificates (the CAs stay).
    Renew(lifecycle::RenewArgs),
    /// Print a kubeconfig for an operator identity.
    Kubeconfig(kubeconfig::KubeconfigArgs),
    /// Install this node's material from the bundle (run by the NixOS activation hook).
    Activate(activate::ActivateArgs),
    /// Render the Calico manifests and CNI configuration.
    Calico(calico::CalicoArgs),
    /// Check the network settings for Calico-over-Tailscale traps.
    Lint(calico::LintArgs),
    /// Generate the Nix binary-cache signing key.
    CacheKey(cache::CacheKeyArgs),
    /// Signed Nix binary cache operations.
    Cache(cache::CacheArgs),
    /// Print the inventory as the tool reads it (JSON), e.g. to compare with the Nix helpers.
    Inventory(inventory::InventoryArgs),
}

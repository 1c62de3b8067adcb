//! `kubepki calico` (render the Calico manifests) and `kubepki lint` (the network lint).
//!
//! Argument parsing and printing only; the work is in [`crate::calico`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::InventoryArg;
use crate::calico::{self, RenderOptions, lint, mtu};
use crate::inventory::Inventory;

#[derive(Debug, Args)]
pub struct CalicoArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Write one file per concern into this folder (created if missing) instead of
    /// printing the manifests as one YAML stream.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Activation's `current` folder on the nodes, where the calico-cni kubeconfig is installed.
    #[arg(long, value_name = "DIR", default_value_os_t = crate::activate::default_material_dir())]
    pub material_dir: PathBuf,
    /// Print how the pod MTU was derived (which link limited it, which overhead) and stop.
    #[arg(long)]
    pub explain: bool,
}

pub fn run_calico(args: &CalicoArgs) -> Result<ExitCode, crate::Error> {
    let inventory = Inventory::load(&args.inventory.inventory)?;
    if args.explain {
        let spec = &inventory.spec;
        for family in mtu::pod_families(spec) {
            println!("{}", mtu::derive(spec, family));
        }
        println!(
            "pod MTU (veth_mtu, FELIX_VXLANMTU, FelixConfiguration vxlanMTU, conflist mtu): {}",
            mtu::cluster_pod_mtu(spec)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let options = RenderOptions {
        material_dir: args.material_dir.clone(),
    };
    let resources = calico::resources(&inventory, &options)?;
    let files = calico::render(&resources)?;
    match &args.out {
        Some(dir) => {
            calico::write(dir, &files)?;
            for file in &files {
                eprintln!("wrote {}", dir.join(file.name).display());
            }
        }
        None => {
            for file in files.iter().filter(|f| f.name.ends_with(".yaml")) {
                print!("{}", file.contents);
            }
        }
    }
    let errors = lint::lint(&inventory)
        .into_iter()
        .filter(lint::Finding::is_error)
        .count();
    if errors > 0 {
        eprintln!(
            "kubepki: rendered, but `kubepki lint` reports {errors} error(s) in these settings"
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct LintArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run_lint(args: &LintArgs) -> Result<ExitCode, crate::Error> {
    let inventory = Inventory::load(&args.inventory.inventory)?;
    let findings = lint::lint(&inventory);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for finding in &findings {
            println!("{finding}");
        }
        let errors = findings.iter().filter(|f| f.is_error()).count();
        println!(
            "{}: {errors} error(s), {} warning(s); {}",
            inventory.path.display(),
            findings.len() - errors,
            mtu::derive(&inventory.spec, mtu::Family::Ipv4)
        );
    }
    if findings.iter().any(lint::Finding::is_error) {
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

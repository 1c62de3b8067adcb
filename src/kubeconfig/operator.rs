//! The operator's kubeconfig: the `admin` or `super-admin` credentials from the bundle, unsealed
//! in memory and embedded into one self-contained kubeconfig.
//!
//! It reads the Kubernetes CA trust bundle, the certificate and the sealed key
//! from the bundle folder the inventory names, and decrypts the key with the
//! operator's identities through [`crate::seal`]. It never writes a file: the
//! result is returned in a zeroizing buffer for the caller to print. It does
//! not issue or renew anything; a missing file means `kubepki recreate` has
//! not run yet.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{SelfContained, render_self_contained};
use crate::inventory::Inventory;
use crate::plan::{self, Authority, Profile};
use crate::seal::{self, Identities, SealError};

/// The two operator identities the plan issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OperatorUser {
    /// `kubernetes-admin` in `kubeadm:cluster-admins`: bound to cluster-admin by RBAC, revocable.
    Admin,
    /// `kubernetes-super-admin` in `system:masters`: break-glass, bypasses RBAC.
    SuperAdmin,
}

impl OperatorUser {
    pub fn profile(self) -> Profile {
        match self {
            OperatorUser::Admin => Profile::Admin,
            OperatorUser::SuperAdmin => Profile::SuperAdmin,
        }
    }
}

/// Why an operator kubeconfig could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error(
        "cannot read {}: {reason}. Fix: run `kubepki recreate` to write the bundle, or check `pki.bundle` in the inventory.",
        path.display()
    )]
    MissingBundleFile { path: PathBuf, reason: String },
    #[error(
        "the plan has no `{name}` certificate. Fix: this is a kubepki bug; please report it with your inventory."
    )]
    NotPlanned { name: &'static str },
    #[error(
        "--server `{server}` is not an https:// URL. Fix: give the API server as https://HOST:PORT, e.g. https://127.0.0.1:6443."
    )]
    ServerNotHttps { server: String },
    #[error("{0}")]
    Unseal(#[from] SealError),
    #[error(
        "cannot print the kubeconfig: {reason}. Fix: redirect stdout to a file or a pipe that stays open."
    )]
    Print { reason: String },
}

/// The API server URL an operator kubeconfig dials: `--server` if given (it must be
/// https://), else the inventory's first API endpoint. Checked before any key is unsealed.
pub fn server_url(inventory: &Inventory, server: Option<&str>) -> Result<String, KubeconfigError> {
    match server {
        Some(url) if !url.starts_with("https://") => Err(KubeconfigError::ServerNotHttps {
            server: url.to_string(),
        }),
        Some(url) => Ok(url.to_string()),
        None => Ok(inventory.api_server_url()),
    }
}

/// A self-contained kubeconfig for `user` that dials `server` (see [`server_url`]).
pub fn operator_kubeconfig(
    inventory: &Inventory,
    user: OperatorUser,
    identities: &Identities,
    server: &str,
) -> Result<Zeroizing<String>, KubeconfigError> {
    let plan = plan::plan(inventory);
    let profile = user.profile();
    let certificate = plan
        .certificates
        .iter()
        .find(|c| c.profile == profile)
        .ok_or(KubeconfigError::NotPlanned {
            name: profile.name(),
        })?;
    let authority = plan
        .authority(Authority::Kubernetes)
        .ok_or(KubeconfigError::NotPlanned { name: "kubernetes" })?;

    let bundle = inventory.bundle_dir();
    let ca_pem = read(&bundle, &authority.cert_file)?;
    let cert_pem = read(&bundle, &certificate.cert_file)?;
    let sealed_key = read(&bundle, &certificate.key_file)?;
    let key_pem = seal::unseal_named(
        &sealed_key,
        identities,
        &bundle.join(&certificate.key_file).display().to_string(),
    )?;
    Ok(render_self_contained(&SelfContained {
        cluster_name: &plan.cluster,
        server,
        user: &certificate.common_name,
        ca_pem: &ca_pem,
        cert_pem: &cert_pem,
        key_pem: &key_pem,
    }))
}

fn read(bundle: &Path, relative: &str) -> Result<Vec<u8>, KubeconfigError> {
    let path = bundle.join(relative);
    std::fs::read(&path).map_err(|e| KubeconfigError::MissingBundleFile {
        path,
        reason: e.to_string(),
    })
}

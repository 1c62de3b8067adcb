//! The error every command can end with; each variant wraps one stage's own error enum.

use crate::inventory::InventoryErrors;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Inventory(#[from] InventoryErrors),
    #[error("{0}")]
    Issue(#[from] crate::issue::IssueError),
    #[error("{0}")]
    Seal(#[from] crate::seal::SealError),
    #[error("{0}")]
    Bundle(#[from] crate::bundle::BundleError),
    #[error("{0}")]
    Kubeconfig(#[from] crate::kubeconfig::operator::KubeconfigError),
    #[error("{0}")]
    Activate(#[from] crate::activate::ActivateError),
    #[error("{0}")]
    Calico(#[from] crate::calico::CalicoError),
    #[error("{0}")]
    Cache(#[from] crate::cache::CacheError),
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Publish(#[from] crate::publish::PublishError),
    #[error("{0}")]
    Lifecycle(#[from] crate::lifecycle::LifecycleError),
}

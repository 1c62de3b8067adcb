//! kubepki: the whole PKI and bootstrap of a NixOS-managed Kubernetes cluster from one inventory.
//!
//! The modules follow the pipeline: [`inventory`] is read and validated,
//! [`plan`] decides every certificate as pure data, [`issue`] makes them,
//! [`seal`] encrypts each private key with age to the nodes that need it and
//! the operators, [`bundle`] writes the result into the repository, and
//! [`publish`] commits it. On a node, [`activate`] installs it. [`calico`]
//! renders the CNI manifests and lints the network, [`cache`] manages the
//! signed Nix binary cache. The core (inventory to materials) is pure; files,
//! git and activation live at the edges.

pub mod activate;
pub mod bundle;
pub mod inventory;
pub mod issue;
pub mod kubeconfig;
pub mod lifecycle;
pub mod plan;
pub mod publish;
pub mod seal;

pub mod atomic;
pub mod cache;
pub mod calico;
pub mod cli;
mod error;
pub mod pem;

pub use error::Error;

//! `kubepki inventory`: the inventory as the tool understands it, as JSON.
//!
//! Without flags it prints the parsed `Spec` with every default filled in.
//! With `--derived` it prints `{"spec": …, "derived": …}`, where `derived`
//! holds the values the NixOS modules compute for themselves from the same
//! file (nix/inventory.nix): primary IPs, the API server URL, the service
//! IPs, the pod MTU (from `calico::mtu`). The Nix agreement test compares the
//! two readings; this command decides nothing the rest of the tool does not.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::InventoryArg;
use crate::calico::mtu;
use crate::inventory::{Inventory, Role, Spec};

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Also print the derived values the NixOS modules use (primary IPs, API URL, pod MTU, ...).
    #[arg(long)]
    pub derived: bool,
}

/// What the NixOS helpers derive from the inventory, computed by the tool's own rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Derived {
    pub api_server_url: String,
    /// The IPv4 pod MTU (`calico::mtu`): what Felix, the CNI conflist and the NixOS modules use.
    pub pod_mtu: u32,
    /// The IPv6 pod MTU the same links and encapsulation give.
    pub pod_mtu_v6: u32,
    pub service_cidrs: Vec<String>,
    pub pod_cidrs: Vec<String>,
    /// The `kubernetes` Service's ClusterIP: the first host of the first service CIDR.
    pub first_service_ip: Option<IpAddr>,
    /// The cluster DNS Service's ClusterIP: the tenth host of the first service CIDR, as kubeadm does.
    pub cluster_dns_ip: Option<IpAddr>,
    pub control_planes: Vec<String>,
    pub etcd_members: Vec<String>,
    pub workers: Vec<String>,
    pub nodes: Vec<DerivedNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DerivedNode {
    pub name: String,
    pub roles: Vec<Role>,
    pub primary_ip: Option<IpAddr>,
    /// Every address, LAN first, without duplicates.
    pub addresses: Vec<IpAddr>,
}

#[derive(Serialize)]
struct WithDerived<'a> {
    spec: &'a Spec,
    derived: Derived,
}

pub fn run(args: &InventoryArgs) -> Result<ExitCode, crate::Error> {
    let inventory = Inventory::load(&args.inventory.inventory)?;
    let json = if args.derived {
        serde_json::to_string_pretty(&WithDerived {
            spec: &inventory.spec,
            derived: derive(&inventory),
        })?
    } else {
        serde_json::to_string_pretty(&inventory.spec)?
    };
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}

/// The derived values of a validated inventory. Pure.
pub fn derive(inventory: &Inventory) -> Derived {
    let spec = &inventory.spec;
    let names = |role: Role| -> Vec<String> {
        inventory
            .nodes()
            .iter()
            .filter(|n| n.has_role(role))
            .map(|n| n.name.clone())
            .collect()
    };
    let first_service = spec.network.service_cidrs.first();
    Derived {
        api_server_url: inventory.api_server_url(),
        pod_mtu: mtu::pod_mtu(inventory),
        pod_mtu_v6: mtu::pod_mtu_v6(inventory),
        service_cidrs: spec
            .network
            .service_cidrs
            .iter()
            .map(|c| c.to_string())
            .collect(),
        pod_cidrs: spec
            .network
            .pod_cidrs
            .iter()
            .map(|c| c.to_string())
            .collect(),
        first_service_ip: first_service.map(|c| nth_host(c, 1)),
        cluster_dns_ip: first_service.map(|c| nth_host(c, 10)),
        control_planes: names(Role::ControlPlane),
        etcd_members: names(Role::Etcd),
        workers: names(Role::Worker),
        nodes: inventory
            .nodes()
            .iter()
            .map(|n| DerivedNode {
                name: n.name.clone(),
                roles: n.roles.clone(),
                primary_ip: n.primary_ip(),
                addresses: n.addresses.all(),
            })
            .collect(),
    }
}

/// The n-th address after a CIDR's network address (n = 1 is the plan's `first_host`).
fn nth_host(cidr: &ipnet::IpNet, n: u32) -> IpAddr {
    match cidr.network() {
        IpAddr::V4(v4) => IpAddr::V4(u32::from(v4).wrapping_add(n).into()),
        IpAddr::V6(v6) => IpAddr::V6(u128::from(v6).wrapping_add(u128::from(n)).into()),
    }
}

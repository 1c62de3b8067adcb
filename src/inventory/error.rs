//! Inventory errors: what is wrong, where (file:line:column and field path), and the fix.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::locate::{self, FieldPath};

/// One thing wrong with the inventory; `Display` is a sentence ending in the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("cannot read {}: {reason}. Fix: check the path and its permissions.", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{message}. Fix: correct the value to match the schema in the README.")]
    Syntax { message: String },
    #[error("{message}. Fix: remove it, or correct its spelling (the README lists every field).")]
    UnknownField { message: String },
    #[error("`{value}` is not a valid {what}. Fix: {hint}.")]
    Invalid {
        value: String,
        what: &'static str,
        hint: &'static str,
    },
    #[error(
        "node `{name}` is declared twice. Fix: give each node a unique name or remove one of them."
    )]
    DuplicateNode { name: String },
    #[error(
        "operator `{name}` is declared twice. Fix: merge their recipients into one `[[operators]]` entry."
    )]
    DuplicateOperator { name: String },
    #[error(
        "no node has the `control-plane` role. Fix: add `roles = [\"control-plane\", \"etcd\"]` to the node that runs the API server."
    )]
    NoControlPlane,
    #[error(
        "the control plane has no etcd: no node has the `etcd` role and `etcd.external_servers` is empty. Fix: add \"etcd\" to a control-plane node's roles, or list an external etcd in `[etcd] external_servers`."
    )]
    NoEtcd,
    #[error(
        "node `{node}` has no roles. Fix: give it at least one of \"control-plane\", \"etcd\", \"worker\"."
    )]
    NoRoles { node: String },
    #[error(
        "{first} `{a}` overlaps {second} `{b}`: packets for one would be routed to the other. Fix: choose non-overlapping ranges{hint}."
    )]
    Overlap {
        first: &'static str,
        a: IpNet,
        second: &'static str,
        b: IpNet,
        hint: &'static str,
    },
    #[error(
        "`{list}` lists two {family} ranges (`{a}`, `{b}`). Fix: keep one per IP family (one IPv4 and optionally one IPv6 for dual-stack)."
    )]
    TwoOfAFamily {
        list: &'static str,
        family: &'static str,
        a: IpNet,
        b: IpNet,
    },
    #[error("`{list}` is empty. Fix: list at least one IPv4 range, e.g. `{example}`.")]
    EmptyCidrs {
        list: &'static str,
        example: &'static str,
    },
    #[error(
        "address `{ip}` of node `{node}` is listed as {kind} but lies outside every `network.{kind}_cidrs` range. Fix: correct the address, or add its network to `network.{kind}_cidrs`."
    )]
    AddressOutsideNetwork {
        node: String,
        ip: IpAddr,
        kind: &'static str,
    },
    #[error(
        "tailnet address `{ip}` of node `{node}` lies outside `network.tailnet_cidr` ({cidr}). Fix: copy the address `tailscale ip` prints on that node."
    )]
    TailnetAddressOutside {
        node: String,
        ip: IpAddr,
        cidr: IpNet,
    },
    #[error(
        "`node_ip` `{ip}` of node `{node}` is not one of its addresses. Fix: use one of the addresses listed under `[nodes.addresses]`, or add it there."
    )]
    NodeIpNotAnAddress { node: String, ip: IpAddr },
    #[error(
        "node `{node}` has no address at all. Fix: add at least one under `[nodes.addresses]` (lan, vpc, tailnet or public)."
    )]
    NoAddress { node: String },
    #[error("cannot read host key {} of node `{node}`: {reason}. Fix: fetch it with `ssh-keyscan -t ed25519 <host> | cut -d' ' -f2- > {}`.", path.display(), path.display())]
    UnreadableHostKey {
        node: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "{owner} uses a `{algorithm}` key, which age cannot encrypt to. Fix: use an ssh-ed25519 key (or ssh-rsa of 2048 to 4096 bits), or an `age1…` recipient."
    )]
    UnsupportedKeyType { owner: String, algorithm: String },
    #[error(
        "{owner} uses a {bits}-bit RSA key; kubepki accepts 2048 to 4096 bits (the Rust age crate refuses larger ones and smaller ones are weak). Fix: generate an ssh-ed25519 host key, or an RSA key within that range."
    )]
    RsaKeySize { owner: String, bits: usize },
    #[error(
        "{owner}: `{value}` is not a recipient: {reason}. Fix: use an `age1…` key, or an `ssh-ed25519 AAAA…` / `ssh-rsa AAAA…` public key line."
    )]
    BadRecipient {
        owner: String,
        value: String,
        reason: String,
    },
    #[error(
        "operator `{name}` has no recipients, so nobody could decrypt the CA keys. Fix: add an `age1…` key or an ssh public key."
    )]
    NoRecipients { name: String },
    #[error(
        "no operator is declared, so the CA keys could be decrypted by nobody. Fix: add an `[[operators]]` entry with your age or ssh public key."
    )]
    NoOperators,
    #[error("{what} must be {bound}, got {value}. Fix: {hint}.")]
    OutOfRange {
        what: &'static str,
        bound: &'static str,
        value: i64,
        hint: &'static str,
    },
}

/// A [`Problem`] with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryError {
    pub file: PathBuf,
    /// 1-based line and column, when the problem belongs to a place in the file.
    pub position: Option<(usize, usize)>,
    /// Dotted path of the field, e.g. `nodes[2].addresses.lan[0]`.
    pub field: Option<String>,
    pub problem: Problem,
}

impl InventoryError {
    pub(crate) fn unlocated(file: &Path, problem: Problem) -> Self {
        InventoryError {
            file: file.to_path_buf(),
            position: None,
            field: None,
            problem,
        }
    }

    pub(crate) fn at_field(file: &Path, source: &str, field: &FieldPath, problem: Problem) -> Self {
        let position = locate::span_of(source, field).map(|at| locate::line_col(source, at));
        InventoryError {
            file: file.to_path_buf(),
            position,
            field: (!field.is_empty()).then(|| field.to_string()),
            problem,
        }
    }

    pub(crate) fn from_toml(file: &Path, source: &str, error: &toml::de::Error) -> Self {
        let span = error.span();
        let field = span
            .as_ref()
            .and_then(|s| locate::field_at(source, s.start))
            .filter(|f| !f.is_empty())
            .map(|f| f.to_string());
        // toml's message repeats its own location; the first line is the substance.
        let mut message = error.message().trim().trim_end_matches('.').to_string();
        let text = span
            .as_ref()
            .and_then(|s| source.get(s.clone()))
            .map(str::trim)
            .unwrap_or("");
        let problem = if let Some(problem) = address_problem(field.as_deref(), text, &message) {
            problem
        } else if message.starts_with("unknown field `") {
            Problem::UnknownField { message }
        } else {
            // Quote the offending value when it is short: "`192.168.0.300` is not..." reads better.
            if !text.is_empty() && text.len() <= 60 && !text.contains('\n') {
                message = format!("{text}: {message}");
            }
            Problem::Syntax { message }
        };
        InventoryError {
            file: file.to_path_buf(),
            position: span.map(|s| locate::line_col(source, s.start)),
            field,
            problem,
        }
    }
}

/// A value serde refused as an IP address or a CIDR, told as such with an example of the form.
///
/// `std` and `ipnet` both say only "invalid IP address syntax", whichever of the two it was.
fn address_problem(field: Option<&str>, text: &str, message: &str) -> Option<Problem> {
    if message != "invalid IP address syntax" {
        return None;
    }
    let value = text.trim_matches(|c| c == '"' || c == '\'').to_string();
    let is_range = field.is_some_and(|f| f.contains("cidr"));
    Some(if is_range {
        Problem::Invalid {
            value,
            what: "network range (CIDR)",
            hint: "write an address and a prefix length, e.g. 10.244.0.0/16 (at most /32 for IPv4, /128 for IPv6)",
        }
    } else {
        Problem::Invalid {
            value,
            what: "IP address",
            hint: "write an IPv4 address as four numbers from 0 to 255 (e.g. 192.168.0.22), or an IPv6 address",
        }
    })
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.problem)
    }
}

impl std::error::Error for InventoryError {}

/// Every problem found in one inventory, reported together so one edit fixes them all.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryErrors(pub Vec<InventoryError>);

impl InventoryErrors {
    pub(crate) fn single(error: InventoryError) -> Self {
        InventoryErrors(vec![error])
    }
}

impl fmt::Display for InventoryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InventoryErrors {}

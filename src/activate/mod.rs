//! Activation on a node: install this node's material from the sealed bundle, all or nothing.
//!
//! Runs from the NixOS activation hook (or as a systemd oneshot) on every
//! node. The order is the guarantee: read the node's files and check their
//! hashes ([`source`]), decrypt every sealed file with the host's SSH keys
//! ([`identity`], [`unseal`]), verify everything against the pinned CAs
//! ([`verify`]), and only then compare with the live generation
//! ([`changes`]), write a new numbered generation and flip the `current`
//! symlink ([`install`], [`generation`]), schedule restarts of exactly the
//! units whose files changed ([`restart`]) and write expiry metrics
//! ([`metrics`]). Any failure before the flip leaves the live generation
//! serving and nothing written. The same bundle again writes nothing under
//! the target and restarts nothing (the metrics file, outside it, is still
//! refreshed so the days-left gauges stay current).
//!
//! It does not issue, renew or seal anything (that happens on the operator's
//! machine), and it does not print: the caller gets a [`Report`] or an
//! [`ActivateError`] and decides how to show it.

pub mod changes;
mod error;
pub mod generation;
pub mod identity;
pub mod install;
pub mod metrics;
pub mod owner;
pub mod restart;
pub mod source;
pub mod unseal;
pub mod verify;

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

pub use changes::{Change, Difference};
pub use error::ActivateError;
pub use install::CrashAfter;
pub use owner::Accounts;
pub use restart::Restart;
pub use verify::{CertificateExpiry, Pins};

use changes::GenerationFile;
use generation::{Metadata, Target};
use owner::Owner;
use source::NodeBundle;
use unseal::Plaintexts;

/// Where the live generation is served from by default.
pub const DEFAULT_TARGET: &str = "/run/kubepki";

/// The symlink in the target that names the live generation; services read through it.
pub const CURRENT_LINK: &str = "current";

/// Where services find the material with the default target: `/run/kubepki/current`.
pub fn default_material_dir() -> PathBuf {
    Path::new(DEFAULT_TARGET).join(CURRENT_LINK)
}

/// Everything one activation needs.
#[derive(Debug, Clone)]
pub struct Request {
    /// The bundle folder (holds `manifest.json`).
    pub bundle: PathBuf,
    pub node: String,
    /// Pinned CA fingerprints per authority (lowercase hex, no prefix).
    pub pins: Pins,
    /// Identity files; empty means the default host keys that exist.
    pub identities: Vec<PathBuf>,
    pub target: PathBuf,
    /// How many generations to keep besides the live one.
    pub keep: usize,
    pub renew_before_days: u32,
    pub dry_run: bool,
    pub restart: Restart,
    pub metrics_dir: Option<PathBuf>,
    pub accounts: Accounts,
    /// Unix seconds to verify against; `None` is the system clock.
    pub now: Option<i64>,
    /// Abort the process after this many files of the new generation (crash tests).
    pub crash_after: Option<CrashAfter>,
}

impl Request {
    /// A request with the defaults of the command line.
    pub fn new(bundle: &Path, node: &str, pins: Pins) -> Request {
        Request {
            bundle: bundle.to_path_buf(),
            node: node.to_string(),
            pins,
            identities: Vec::new(),
            target: PathBuf::from(DEFAULT_TARGET),
            keep: 3,
            renew_before_days: 30,
            dry_run: false,
            restart: Restart::Report,
            metrics_dir: None,
            accounts: Accounts::System,
            now: None,
            crash_after: None,
        }
    }
}

/// What an activation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The live generation already holds exactly this material.
    Unchanged { generation: u64 },
    /// A new generation went live.
    Installed {
        generation: u64,
        previous: Option<u64>,
    },
    /// `--dry-run`: what would change, nothing written.
    DryRun { live: Option<u64> },
}

/// The result of a successful activation, for the caller to print.
#[derive(Debug, Clone)]
pub struct Report {
    pub node: String,
    pub target: PathBuf,
    pub outcome: Outcome,
    pub changes: Vec<Change>,
    /// Units whose material changed: restarted, listed, or (dry run) that would be.
    pub units: Vec<String>,
    pub warnings: Vec<String>,
    pub pruned: Vec<u64>,
    pub certificates: Vec<CertificateExpiry>,
    pub metrics: Option<PathBuf>,
}

/// Decrypts, verifies and installs the node's material; see the module documentation.
pub fn activate(request: &Request) -> Result<Report, ActivateError> {
    let now = request
        .now
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    let target = Target::new(&absolute(&request.target));

    // 1. Read and decrypt everything, 2. verify everything: nothing is written yet.
    let bundle = source::read(&request.bundle, &request.node)?;
    let identities = identity::load(&request.identities)?;
    let plaintexts = unseal::unseal_all(&bundle, &identities)?;
    let clock = verify::Clock {
        now,
        renew_before_days: request.renew_before_days,
    };
    let verified = verify::verify_all(&bundle, &plaintexts, &request.pins, clock)?;
    let mut warnings = verified.warnings;

    let chown = owner::running_as_root();
    if !chown {
        warnings.push(format!(
            "not running as root: files under {} keep uid {} instead of their owners (kubernetes, etcd, ...)",
            target.root.display(),
            owner::running_owner().uid
        ));
    }
    let files = generation_files(&bundle, &plaintexts, &target, &request.accounts, chown)?;
    drop(plaintexts);
    if !install::is_memory_backed(&target.root) {
        warnings.push(format!(
            "{} is not on tmpfs or ramfs: private keys are written to persistent storage; mount a tmpfs there (as /run is)",
            target.root.display()
        ));
    }

    let mut report = Report {
        node: request.node.clone(),
        target: target.root.clone(),
        outcome: Outcome::DryRun { live: None },
        changes: Vec::new(),
        units: Vec::new(),
        warnings,
        pruned: Vec::new(),
        certificates: verified.certificates,
        metrics: None,
    };
    let install_error = |path: PathBuf| move |source| ActivateError::Install { path, source };

    if request.dry_run {
        let live = target
            .current()
            .map_err(install_error(target.current_link()))?;
        report.changes = compare_with_live(&target, live, &files)?;
        report.units = changes::units(&report.changes);
        report.outcome = Outcome::DryRun { live };
        return Ok(report);
    }

    // 3. Install: only now does anything on the node change.
    let _lock = install::lock(&target)?;
    target
        .remove_partials()
        .map_err(install_error(target.generations()))?;
    let live = target
        .current()
        .map_err(install_error(target.current_link()))?;
    report.changes = compare_with_live(&target, live, &files)?;
    report.units = changes::units(&report.changes);
    let generation = match live {
        Some(live) if report.changes.is_empty() => {
            report.outcome = Outcome::Unchanged { generation: live };
            live
        }
        _ => {
            let n = target
                .next_number()
                .map_err(install_error(target.generations()))?;
            let metadata = Metadata {
                node: bundle.node.clone(),
                manifest_sha256: bundle.manifest_sha256.clone(),
                units: files
                    .iter()
                    .map(|f| (f.name.clone(), f.units.clone()))
                    .collect(),
            };
            let durable = !install::is_memory_backed(&target.root);
            install::write_generation(
                &target,
                n,
                &files,
                &metadata,
                chown,
                durable,
                request.crash_after,
            )?;
            target
                .swap(n)
                .map_err(install_error(target.current_link()))?;
            report.pruned = target
                .prune(n, request.keep)
                .map_err(install_error(target.generations()))?;
            report.outcome = Outcome::Installed {
                generation: n,
                previous: live,
            };
            restart::schedule(&request.restart, &report.units)?;
            n
        }
    };

    if let Some(dir) = &request.metrics_dir {
        let text = metrics::render(&request.node, &report.certificates, generation, now);
        report.metrics = Some(metrics::write(dir, &text)?);
    }
    Ok(report)
}

fn compare_with_live(
    target: &Target,
    live: Option<u64>,
    files: &[GenerationFile],
) -> Result<Vec<Change>, ActivateError> {
    let metadata = live.map(|n| target.read_metadata(n)).unwrap_or_default();
    let dir = live.map(|n| target.generation(n));
    changes::compare(dir.as_deref().map(|d| (d, &metadata)), files).map_err(|source| {
        ActivateError::Install {
            path: dir.unwrap_or_else(|| target.root.clone()),
            source,
        }
    })
}

/// The files of the new generation: material from the bundle, then rendered kubeconfigs.
fn generation_files(
    bundle: &NodeBundle,
    plaintexts: &Plaintexts,
    target: &Target,
    accounts: &Accounts,
    chown: bool,
) -> Result<Vec<GenerationFile>, ActivateError> {
    let owner = |file: &str, user: &str, group: &str| -> Result<Owner, ActivateError> {
        if chown {
            accounts.resolve(file, user, group)
        } else {
            Ok(owner::running_owner())
        }
    };
    let mut files = Vec::new();
    for file in &bundle.files {
        let contents = match plaintexts.get(&file.source) {
            Some(plain) => plain.clone(),
            None => Zeroizing::new(bundle.bytes(&file.source).to_vec()),
        };
        files.push(GenerationFile {
            name: file.install.clone(),
            contents,
            owner: owner(&file.install, &file.owner, &file.group)?,
            mode: file.mode & 0o7777,
            units: file.units.clone(),
        });
    }
    let live_dir = target.current_link();
    for kubeconfig in &bundle.kubeconfigs {
        let text = crate::kubeconfig::render_node_local(kubeconfig, &bundle.cluster, &live_dir);
        files.push(GenerationFile {
            name: kubeconfig.install.clone(),
            contents: Zeroizing::new(text.into_bytes()),
            owner: owner(&kubeconfig.install, &kubeconfig.owner, &kubeconfig.group)?,
            mode: kubeconfig.mode & 0o7777,
            units: kubeconfig.units.clone(),
        });
    }
    Ok(files)
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

//! `kubepki activate`: install a node's material from the bundle.
//!
//! Parses the flags, runs [`crate::activate::activate`] and prints the report:
//! what changed, which units restart, warnings on stderr. With `--systemd`
//! (a oneshot unit on systemd-sysusers/userborn systems) lines carry sd-daemon
//! priority prefixes so the journal files warnings and errors at their level,
//! and restarts go through `systemctl try-restart`. Exit status: 0 when the
//! material is installed or already current, 1 when anything was refused.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::activate::{self, Accounts, Outcome, Pins, Report, Request, Restart};
use crate::plan::Authority;

#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// The bundle folder, holding manifest.json (hosts/pki, usually from the Nix store).
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// This node's name, as in hosts/cluster.toml.
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// A pinned CA fingerprint, `AUTHORITY=sha256:HEX` (kubernetes, etcd, front-proxy); repeat
    /// for each authority, and twice for one authority during a CA rotation.
    #[arg(long = "pin", value_name = "AUTHORITY=sha256:HEX", value_parser = parse_pin)]
    pub pins: Vec<(Authority, String)>,
    /// An SSH private key to decrypt with; repeatable. Default: /etc/ssh/ssh_host_ed25519_key
    /// and /etc/ssh/ssh_host_rsa_key, the ones that exist.
    #[arg(long = "identity", short = 'i', value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// Where generations live; services read <DIR>/current/<file>.
    #[arg(long, value_name = "DIR", default_value = activate::DEFAULT_TARGET)]
    pub target: PathBuf,
    /// Old generations to keep besides the live one.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub keep: usize,
    /// Warn when a certificate expires within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub renew_before_days: u32,
    /// Print what would change; write nothing, restart nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Append the units to restart to this file (NixOS: /run/nixos/activation-restart-list).
    #[arg(long, value_name = "FILE", conflicts_with = "systemd")]
    pub restart_list: Option<PathBuf>,
    /// Run as a systemd oneshot: journal priority prefixes, `systemctl try-restart` the units.
    #[arg(long)]
    pub systemd: bool,
    /// Write kubepki.prom (certificate expiry) here for node-exporter's textfile collector.
    #[arg(long, value_name = "DIR")]
    pub metrics_dir: Option<PathBuf>,
}

fn parse_pin(text: &str) -> Result<(Authority, String), String> {
    let (authority, fingerprint) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not AUTHORITY=sha256:HEX"))?;
    let authority = Authority::from_name(authority.trim()).ok_or_else(|| {
        format!("`{authority}` is not an authority (kubernetes, etcd, front-proxy)")
    })?;
    let hex = fingerprint
        .trim()
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("`{fingerprint}` must start with `sha256:`"))?
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "`{fingerprint}` is not sha256: followed by 64 hex digits"
        ));
    }
    Ok((authority, hex))
}

impl ActivateArgs {
    fn request(&self) -> Request {
        let mut pins: Pins = BTreeMap::new();
        for (authority, hex) in &self.pins {
            pins.entry(*authority).or_default().push(hex.clone());
        }
        let restart = match (&self.restart_list, self.systemd) {
            (Some(list), _) => Restart::List(list.clone()),
            (None, true) => Restart::Systemctl,
            (None, false) => Restart::Report,
        };
        Request {
            identities: self.identities.clone(),
            target: self.target.clone(),
            keep: self.keep,
            renew_before_days: self.renew_before_days,
            dry_run: self.dry_run,
            restart,
            metrics_dir: self.metrics_dir.clone(),
            accounts: Accounts::System,
            ..Request::new(&self.bundle, &self.node, pins)
        }
    }
}

/// How lines are marked for the journal (sd-daemon(3) priority prefixes) in systemd mode.
struct Printer {
    systemd: bool,
}

impl Printer {
    fn info(&self, line: &str) {
        if self.systemd {
            println!("<6>{line}");
        } else {
            println!("{line}");
        }
    }
    fn warning(&self, line: &str) {
        if self.systemd {
            eprintln!("<4>kubepki: warning: {line}");
        } else {
            eprintln!("kubepki: warning: {line}");
        }
    }
}

pub fn run_activate(args: &ActivateArgs) -> Result<ExitCode, crate::Error> {
    let printer = Printer {
        systemd: args.systemd,
    };
    match activate::activate(&args.request()) {
        Ok(report) => {
            print_report(&printer, &report, args);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) if args.systemd => {
            eprintln!("<3>kubepki: {error}");
            Ok(ExitCode::FAILURE)
        }
        Err(error) => Err(error.into()),
    }
}

fn print_report(printer: &Printer, report: &Report, args: &ActivateArgs) {
    for warning in &report.warnings {
        printer.warning(warning);
    }
    let node = &report.node;
    let headline = match &report.outcome {
        Outcome::Unchanged { generation } => {
            format!("node {node}: unchanged (generation {generation} is current)")
        }
        Outcome::Installed {
            generation,
            previous,
        } => {
            let previous = previous.map_or("none".to_string(), |p| p.to_string());
            format!(
                "node {node}: installed generation {generation} at {} (previous: {previous})",
                report.target.join(activate::CURRENT_LINK).display()
            )
        }
        Outcome::DryRun { live } => {
            let live = live.map_or("none".to_string(), |p| p.to_string());
            format!(
                "node {node}: dry run, {} file(s) would change (live generation: {live}); nothing written",
                report.changes.len()
            )
        }
    };
    printer.info(&headline);
    for change in &report.changes {
        let what: Vec<String> = change.differences.iter().map(|d| d.to_string()).collect();
        let units = if change.units.is_empty() {
            String::new()
        } else {
            format!(" -> {}", change.units.join(" "))
        };
        printer.info(&format!("  {} ({}){units}", change.name, what.join(", ")));
    }
    if !report.units.is_empty() {
        let how = match (&report.outcome, &args.restart_list, args.systemd) {
            (Outcome::DryRun { .. }, _, _) => "would restart".to_string(),
            (_, Some(list), _) => format!("restart scheduled in {}:", list.display()),
            (_, None, true) => "try-restarted:".to_string(),
            (_, None, false) => "units to restart (no --restart-list or --systemd given):".into(),
        };
        printer.info(&format!("{how} {}", report.units.join(" ")));
    }
    if !report.pruned.is_empty() {
        let pruned: Vec<String> = report.pruned.iter().map(u64::to_string).collect();
        printer.info(&format!("pruned generation(s) {}", pruned.join(", ")));
    }
    if let Some(path) = &report.metrics {
        printer.info(&format!("metrics written to {}", path.display()));
    }
}

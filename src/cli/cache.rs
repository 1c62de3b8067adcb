//! `kubepki cache-key` and `kubepki cache secret|verify`: the signed Nix binary cache.
//!
//! Argument parsing and printing only; the key, sealing and verification live
//! in `crate::cache`. The secret key reaches stdout only behind an explicit
//! flag (`--print-secret`) or subcommand (`cache secret`), so it can be piped
//! into `gh secret set` without ever touching the operator's disk.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::InventoryArg;
use crate::cache::{self, KeyRequest, verify};
use crate::inventory::Inventory;

#[derive(Debug, Args)]
pub struct CacheKeyArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Key name, e.g. `ducksnest-cache-1` [default: <cluster>-cache-1, or the next number with --rotate].
    #[arg(long)]
    pub name: Option<String>,
    /// Substituter URL to record in `cache.url`, e.g. `s3://BUCKET?region=REGION`.
    #[arg(long)]
    pub url: Option<String>,
    /// Replace the existing key with a new one under a new name (`…-1` becomes `…-2`).
    #[arg(long)]
    pub rotate: bool,
    /// Also write the secret key to stdout (only it), e.g. `| gh secret set NIX_CACHE_SIGNING_KEY`.
    #[arg(long)]
    pub print_secret: bool,
}

pub fn run_cache_key(args: &CacheKeyArgs) -> Result<ExitCode, crate::Error> {
    let inventory = Inventory::load(&args.inventory.inventory)?;
    let request = KeyRequest {
        name: args.name.clone(),
        url: args.url.clone(),
        rotate: args.rotate,
    };
    let created = cache::create_signing_key(&inventory, &request)?;
    let public = created.key.public_key();
    // With --print-secret stdout carries the secret alone; everything else goes to stderr.
    let mut notes: Box<dyn std::io::Write> = if args.print_secret {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let mut lines = vec![
        format!("public key:  {public}"),
        format!(
            "sealed key:  {} (opens with any of {} recipients)",
            created.sealed_file.display(),
            created.recipients
        ),
        format!("recorded in: {}", inventory.path.display()),
    ];
    if let Some(old) = &created.replaced {
        lines.push(format!(
            "replaces `{old}`: hosts stop trusting it once they are rebuilt; paths already in the cache \
             must be re-signed (`nix store sign --store URL --key-file KEY -r PATHS`) or pushed again."
        ));
    }
    match &created.url {
        Some(url) => lines.push(format!("cache url:   {url}")),
        None => lines.push(
            "no cache url yet: hosts get no substituter until `cache.url` is set (--url).".into(),
        ),
    }
    if !args.print_secret {
        lines.push(
            "CI secret:   kubepki cache secret -i YOUR_KEY | gh secret set NIX_CACHE_SIGNING_KEY"
                .into(),
        );
    }
    for line in lines {
        let _ = writeln!(notes, "{line}");
    }
    if args.print_secret {
        print_secret(created.key.to_nix().expose());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Decrypt the sealed signing key and print it to stdout (for `gh secret set`).
    Secret(SecretArgs),
    /// Check narinfo signatures (a .narinfo file or a file:// cache folder) against the trusted key.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct SecretArgs {
    /// An operator's or CI's private key: OpenSSH (ed25519, RSA) or an age identity file
    /// [default: $AGE_IDENTITY, ~/.ssh/id_ed25519, ~/.ssh/id_rsa, ~/.config/age/keys.txt].
    #[arg(long, short = 'i')]
    pub identity: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A .narinfo file, or the folder of a file:// binary cache (every *.narinfo in it).
    pub path: PathBuf,
    /// `NAME:BASE64` public key to trust [default: the inventory's `cache.public_key`].
    #[arg(long = "trusted-key")]
    pub trusted_keys: Vec<String>,
    /// Print failures only.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn run_cache(args: &CacheArgs) -> Result<ExitCode, crate::Error> {
    match &args.command {
        CacheCommand::Secret(secret) => {
            let inventory = Inventory::load(&args.inventory.inventory)?;
            let key = cache::open_signing_key(&inventory, &secret.identity)?;
            print_secret(key.to_nix().expose());
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Verify(verify_args) => run_verify(&args.inventory, verify_args),
    }
}

fn run_verify(inventory: &InventoryArg, args: &VerifyArgs) -> Result<ExitCode, crate::Error> {
    let keys =
        cache::trusted_keys_for(&args.trusted_keys, || Inventory::load(&inventory.inventory))?;
    let trusted = verify::trusted_keys(&keys);
    let reports = verify::verify_path(&args.path, &trusted).map_err(cache::CacheError::from)?;
    let mut out = std::io::stdout().lock();
    let mut failed = 0usize;
    for report in &reports {
        let what = report
            .store_path
            .clone()
            .unwrap_or_else(|| report.narinfo.display().to_string());
        if report.is_ok() {
            if !args.quiet {
                let signer = report.signed_by.as_deref().unwrap_or_default();
                let _ = writeln!(out, "ok    {what} (signed by {signer})");
            }
            continue;
        }
        failed += 1;
        for finding in &report.findings {
            let _ = writeln!(
                out,
                "FAIL  {what} [{}]: {finding}",
                report.narinfo.display()
            );
        }
    }
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    let _ = writeln!(
        out,
        "{} narinfo file(s) checked against {}: {} ok, {failed} failed",
        reports.len(),
        names.join(", "),
        reports.len() - failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes the secret key to stdout without a newline, as `nix key generate-secret` does.
fn print_secret(secret: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(secret.as_bytes());
    let _ = out.flush();
}

//! Orchestration only: parse the command line, run the command, report the error.

use std::process::ExitCode;

use clap::Parser;
use kubepki::cli::{self, Cli, Command};

fn main() -> ExitCode {
    // `kubepki plan | head` should end quietly when head closes the pipe, as other CLIs do,
    // instead of panicking in println!.
    // SAFETY: called before any thread exists; only restores the default disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Plan(a) => cli::recreate::run_plan(a),
        Command::Recreate(a) => cli::recreate::run_recreate(a),
        Command::Check(a) => cli::lifecycle::run_check(a),
        Command::Renew(a) => cli::lifecycle::run_renew(a),
        Command::Kubeconfig(a) => cli::kubeconfig::run_kubeconfig(a),
        Command::Activate(a) => cli::activate::run_activate(a),
        Command::Calico(a) => cli::calico::run_calico(a),
        Command::Lint(a) => cli::calico::run_lint(a),
        Command::CacheKey(a) => cli::cache::run_cache_key(a),
        Command::Cache(a) => cli::cache::run_cache(a),
        Command::Inventory(a) => cli::inventory::run(a),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kubepki: {error}");
            ExitCode::FAILURE
        }
    }
}

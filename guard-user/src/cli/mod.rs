//! The `rtguard` command line. Each subcommand lives in its own module; this one holds the
//! argument definitions and the exit codes.

mod apt_hook;
mod audit;
mod check;
mod config;
mod explain;
mod maintenance;
mod probe;
mod run;
mod status;
mod unload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit statuses with a meaning an operator or a unit file can act on.
pub mod exit {
    /// Done, or (for `run`) stopped cleanly.
    pub const OK: u8 = 0;
    /// Failed for a reason printed on stderr.
    pub const FAILURE: u8 = 1;
    /// Bad invocation or bad input (clap also uses 2).
    pub const USAGE: u8 = 2;
    /// The kernel cannot enforce and degraded running was not allowed.
    pub const ENFORCEMENT_UNAVAILABLE: u8 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "rtguard",
    version,
    about = "Guards a host's container runtime against destructive operations",
    long_about = "rtguard loads BPF LSM programs that refuse destructive operations on a \
                  host's container runtime (containerd, runc, Docker): its binaries, units, \
                  configuration and data. Logs go to stderr; set RUST_LOG to change the level."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the guard in the foreground until SIGTERM or SIGINT.
    Run(run::RunArgs),
    /// Show what this kernel offers rtguard: release, active LSMs, BTF struct offsets.
    Probe(probe::ProbeArgs),
    /// Show what the running daemon enforces. Exit 0 enforcing, 3 degraded or audit-only,
    /// 1 not running.
    Status(status::StatusArgs),
    /// Open, close or list maintenance windows for packages with `upgrade = "window"`.
    Maintenance(maintenance::MaintenanceArgs),
    /// Review the audit log: filter, tabulate, summarise.
    Audit(audit::AuditArgs),
    /// Validate a policy and show what it protects on this host (see policy/README.md).
    Check(check::CheckArgs),
    /// Show or restore the kept versions of protected configuration files.
    Config(config::ConfigArgs),
    /// Show how a command line is classified: allowed, blocked, or allowed as an upgrade.
    Explain(explain::ExplainArgs),
    /// apt's pre-install hook: refuse a transaction that removes a protected package before
    /// dpkg runs (reads apt's plan, protocol version 3, on stdin).
    AptHook(apt_hook::AptHookArgs),
    /// Detach the programs a daemon started with --pin left attached, and remove the pins.
    /// Refuses while the daemon runs.
    Unload(unload::UnloadArgs),
}

/// Parses the command line, runs the subcommand and maps the result to an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let status = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Probe(args) => probe::probe(args),
        Command::Status(args) => status::status(args),
        Command::Maintenance(args) => maintenance::maintenance(args),
        Command::Audit(args) => audit::audit(args),
        Command::Check(args) => check::check(args),
        Command::Config(args) => config::config(args),
        Command::Explain(args) => explain::explain(args),
        Command::Unload(args) => unload::unload(args),
        Command::AptHook(args) => apt_hook::apt_hook(args),
    };
    ExitCode::from(status)
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

//! `rtguard apt-hook`: apt's `DPkg::Pre-Install-Pkgs` hook (installed by the package as
//! /etc/apt/apt.conf.d/50rtguard). It reads apt's plan on stdin and refuses, before dpkg
//! runs, a transaction that removes a protected package.
//!
//! It judges; the kernel enforces. Whatever keeps it from judging (no policy, a policy with
//! an error, a plan in another protocol version) is said on stderr and the transaction goes
//! on to dpkg, where the kernel still refuses what the policy protects.

use std::path::PathBuf;

use clap::Args;

use super::exit;
use crate::{
    daemon::status,
    host::paths,
    policy,
    preflight::{self, apt},
    tables::maintenance::{state_file, MaintenanceState},
};

#[derive(Debug, Args)]
pub struct AptHookArgs {
    /// The policy to judge with [default: the running daemon's, else
    /// /etc/rtguard/production.toml].
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Where the maintenance windows are kept.
    #[arg(long, value_name = "DIR", default_value = paths::STATE_DIR)]
    pub state_dir: PathBuf,
}

pub fn apt_hook(args: AptHookArgs) -> u8 {
    let path = args.policy.unwrap_or_else(|| {
        status::running_status(&status::default_path())
            .map(|s| s.policy_file)
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from(paths::DEFAULT_POLICY), PathBuf::from)
    });
    let policy = match policy::load(&path) {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!(
                "rtguard: apt hook: not judging this transaction, the policy does not load:\n{}",
                e.render()
            );
            return exit::OK;
        }
    };
    let windows = MaintenanceState::load(&state_file(&args.state_dir)).unwrap_or_else(|e| {
        eprintln!("rtguard: apt hook: {e}; judging as if no maintenance window were open");
        MaintenanceState::default()
    });
    let plan = match apt::parse(std::io::stdin().lock()) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("rtguard: apt hook: not judging this transaction: {e}");
            return exit::OK;
        }
    };
    let review = preflight::review(&policy, &windows, time::OffsetDateTime::now_utc(), &plan);
    for line in review.message() {
        eprintln!("rtguard: {line}");
    }
    if review.refused.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    }
}

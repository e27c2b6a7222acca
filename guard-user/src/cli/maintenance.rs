//! `rtguard maintenance`: open, close and list maintenance windows.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand};
use nix::sys::signal::{kill, Signal};

use super::exit;
use crate::{
    daemon::status::{self, running_daemon},
    host::paths,
    tables::maintenance::{state_file, MaintenanceState},
};

#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    #[command(subcommand)]
    pub action: Action,

    /// The daemon's state directory.
    #[arg(long, value_name = "DIR", default_value = paths::STATE_DIR, global = true)]
    pub state_dir: PathBuf,

    /// The daemon's status file, to find and notify it [default: /run/rtguard/status.json].
    #[arg(long, value_name = "FILE", global = true)]
    pub status_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Let installs, upgrades and reinstalls of packages whose group says
    /// `upgrade = "window"` through, for a limited time (with --allow-removal, their
    /// removal too).
    Open {
        /// Package name (repeatable). Each window opens that package only.
        #[arg(long = "package", value_name = "NAME", required = true)]
        packages: Vec<String>,
        /// Also allow removing the package (whatever its group's `upgrade`), and stopping
        /// and disabling the units it ships.
        #[arg(long)]
        allow_removal: bool,
        /// How long the window stays open, e.g. 15m, 2h.
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Why: recorded in the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Close windows before they expire.
    Close {
        #[arg(long = "package", value_name = "NAME", required_unless_present = "all")]
        packages: Vec<String>,
        /// Close every window.
        #[arg(long, conflicts_with = "packages")]
        all: bool,
    },
    /// Show the open windows.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn maintenance(args: MaintenanceArgs) -> u8 {
    let path = state_file(&args.state_dir);
    let mut state = match MaintenanceState::load(&path) {
        Ok(state) => state,
        Err(e) => {
            eprintln!("rtguard: {e}");
            return exit::FAILURE;
        }
    };
    let now = time::OffsetDateTime::now_utc();
    state.expire(now);
    match args.action {
        Action::List { json } => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&state.windows).unwrap_or_default()
                );
            } else if state.windows.is_empty() {
                println!("no maintenance window open");
            } else {
                for w in &state.windows {
                    let left = (w.expires - now).whole_seconds().max(0) as u64;
                    println!(
                        "{:<24} until {} ({} left), removal {}: {} (by {})",
                        w.package,
                        w.expires,
                        humantime::format_duration(Duration::from_secs(left)),
                        w.removal(),
                        w.reason,
                        w.opened_by
                    );
                }
            }
            return exit::OK;
        }
        Action::Open {
            packages,
            allow_removal,
            duration,
            reason,
        } => {
            let who = caller();
            for p in &packages {
                state.open(p, allow_removal, duration, &reason, &who, now);
            }
        }
        Action::Close { packages, all } => {
            if all {
                state.windows.clear();
            } else {
                for p in &packages {
                    if !state.close(p) {
                        eprintln!("rtguard: no maintenance window is open for {p}");
                    }
                }
            }
        }
    }
    if let Err(e) = state.save(&path) {
        eprintln!("rtguard: {e}");
        return exit::FAILURE;
    }
    let status_file = args.status_file.unwrap_or_else(status::default_path);
    match running_daemon(&status_file) {
        Some(pid) => {
            if let Err(e) = kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGHUP) {
                eprintln!("rtguard: cannot notify the daemon (pid {pid}): {e}");
                return exit::FAILURE;
            }
            println!("maintenance windows updated; rtguard (pid {pid}) notified");
        }
        None => println!(
            "maintenance windows updated; no rtguard is running, they apply when it starts"
        ),
    }
    exit::OK
}

/// The caller as the audit trail names it: the login user if known, else the uid.
fn caller() -> String {
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name);
    match (std::env::var("SUDO_USER").ok(), name) {
        (Some(sudo), Some(name)) => format!("{sudo} (as {name})"),
        (None, Some(name)) => name,
        (_, None) => format!("uid {uid}"),
    }
}

//! `rtguard config`: the kept versions of protected configuration files, and restoring one.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use time::format_description::well_known::Rfc3339;

use super::exit;
use crate::{
    audit::config_history::{current_sha256, History, HistoryError, Version},
    host::paths,
};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: Action,

    /// The daemon's state directory, where the versions are kept.
    #[arg(long, value_name = "DIR", default_value = paths::STATE_DIR, global = true)]
    pub state_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// List the kept versions of a configuration file, oldest first.
    History {
        /// The file, e.g. /etc/containerd/config.toml.
        path: PathBuf,
        /// One JSON object per version instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a kept version back into the file, in place (the same inode, so its
    /// protection and mode stay). The write is an edit, recorded in the audit log with
    /// this command as its actor.
    Restore {
        path: PathBuf,
        /// The version to restore [default: the newest one that differs from the file].
        #[arg(long, value_name = "N")]
        version: Option<u32>,
    },
}

pub fn config(args: ConfigArgs) -> u8 {
    let history = History::new(&args.state_dir);
    let result = match args.action {
        Action::History { path, json } => show(&history, &absolute(path), json),
        Action::Restore { path, version } => {
            let path = absolute(path);
            history.restore(&path, version).map(|v| {
                println!(
                    "restored {} to version {} ({} bytes, taken {})",
                    path.display(),
                    v.number,
                    v.size,
                    taken(&v)
                );
            })
        }
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("rtguard: {e}");
            match e {
                HistoryError::Io { .. } | HistoryError::Index { .. } => exit::FAILURE,
                _ => exit::USAGE,
            }
        }
    }
}

fn taken(v: &Version) -> String {
    v.taken
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| v.taken.to_string())
}

/// The daemon keys versions by the absolute path it protects.
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

fn show(history: &History, path: &std::path::Path, json: bool) -> Result<(), HistoryError> {
    let versions = history.versions(path)?;
    if json {
        for v in &versions {
            println!(
                "{}",
                serde_json::to_string(v).expect("a version serialises")
            );
        }
        return Ok(());
    }
    if versions.is_empty() {
        return Err(HistoryError::NoHistory {
            path: path.to_owned(),
        });
    }
    let current = current_sha256(path);
    println!(
        "{:>7}  {:<30}  {:>9}  {:<12}",
        "VERSION", "TAKEN", "BYTES", "SHA256"
    );
    for v in &versions {
        let mark = if current.as_ref() == Some(&v.sha256) {
            "  (current)"
        } else {
            ""
        };
        println!(
            "{:>7}  {:<20}  {:>9}  {:<12}{mark}",
            v.number,
            taken(v),
            v.size,
            &v.sha256[..12]
        );
    }
    Ok(())
}

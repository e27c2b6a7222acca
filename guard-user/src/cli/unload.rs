//! `rtguard unload`: removes what a daemon started with `--pin` left attached.

use std::path::PathBuf;

use clap::Args;

use super::exit;
use crate::{
    audit::{Actor, AuditLog, AuditLogConfig, Decision, Layer, PolicyRef, RecordContext},
    daemon::status::{default_path, running_daemon},
    host::paths,
    host::proc::Procfs,
    loader::PinDir,
};

#[derive(Debug, Args)]
pub struct UnloadArgs {
    /// The pin directory the daemon used (`rtguard run --pin-dir`).
    #[arg(long, value_name = "DIR", default_value = paths::BPFFS_DIR)]
    pub pin_dir: PathBuf,

    /// The audit log the unload is recorded in.
    #[arg(long, value_name = "FILE", default_value = paths::DEFAULT_AUDIT_LOG)]
    pub audit_log: PathBuf,

    /// The running daemon's status file [default: /run/rtguard/status.json]; unload
    /// refuses while that daemon runs.
    #[arg(long, value_name = "FILE")]
    pub status_file: Option<PathBuf>,
}

/// Unpins every generation's links (the kernel then detaches the programs), removes the
/// maps' pins and records it. Refuses while a daemon runs: its programs are attached for
/// as long as it holds them, so it must be stopped first.
pub fn unload(args: UnloadArgs) -> u8 {
    let status_file = args.status_file.unwrap_or_else(default_path);
    if let Some(pid) = running_daemon(&status_file) {
        eprintln!(
            "rtguard: the daemon is running (pid {pid}); stop it first (systemctl stop rtguard), then unload"
        );
        return exit::FAILURE;
    }
    let pins = PinDir::new(&args.pin_dir);
    let generations = match pins.generations() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("rtguard: {e}");
            return exit::FAILURE;
        }
    };
    if generations.is_empty() {
        println!(
            "nothing is pinned under {}: no programs to unload",
            args.pin_dir.display()
        );
        return exit::OK;
    }
    let mut detached = 0;
    let mut names = Vec::new();
    for g in &generations {
        match g.unpin_links().and_then(|n| g.remove().map(|()| n)) {
            Ok(n) => {
                detached += n;
                names.push(g.name());
            }
            Err(e) => {
                eprintln!("rtguard: {e}");
                return exit::FAILURE;
            }
        }
    }
    std::fs::remove_dir(&args.pin_dir).ok();
    let note = format!(
        "unloaded {detached} pinned program(s) from {} ({})",
        args.pin_dir.display(),
        names.join(", ")
    );
    println!("{note}");
    let context = RecordContext::new(
        "",
        PolicyRef {
            name: String::new(),
            sha256: String::new(),
        },
    );
    let record = context
        .record(
            Layer::Daemon,
            "unload",
            Decision::Notice,
            Actor::this_process(&Procfs::default()),
        )
        .note(note);
    match AuditLog::open(AuditLogConfig::new(&args.audit_log))
        .and_then(|mut log| log.append(&record))
    {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("rtguard: the programs are unloaded, but recording it failed: {e}");
            exit::FAILURE
        }
    }
}

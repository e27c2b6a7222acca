//! `rtguard run`: load, protect, report, and stay in the foreground.

use std::{collections::HashMap, path::PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use guard_common::InodeKey;
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, SignalKind},
};
use tracing::{error, info, warn};

use super::exit;
use crate::{
    events,
    loader::{Guard, LoadError, Mode},
    notify::notify,
    resolve::{protected_object, ProtectedObject},
};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Protect this file from removal (repeatable). Identity is the file's (dev, ino), so
    /// links, bind mounts and chroots reach the same protection.
    #[arg(long = "protect", value_name = "PATH", required = true)]
    pub protect: Vec<PathBuf>,

    /// enforce: deny matching operations. audit: allow them and report "would-block".
    #[arg(long, value_enum, default_value_t = ModeArg::Enforce)]
    pub mode: ModeArg,

    /// If the kernel cannot enforce, keep running without enforcement instead of exiting
    /// with status 3.
    #[arg(long)]
    pub allow_degraded: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Enforce,
    Audit,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Enforce => Mode::Enforce,
            ModeArg::Audit => Mode::Audit,
        }
    }
}

pub fn run(args: RunArgs) -> u8 {
    let objects = match args
        .protect
        .iter()
        .map(|p| protected_object(p))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(objects) => objects,
        Err(e) => {
            eprintln!("rtguard: {e}");
            return exit::USAGE;
        }
    };

    let guard = match Guard::load(args.mode.into()) {
        Ok(guard) => Some(guard),
        Err(e @ LoadError::LsmUnavailable { .. }) if args.allow_degraded => {
            eprintln!("rtguard: {e}");
            eprintln!("rtguard: running degraded (--allow-degraded): nothing is blocked");
            None
        }
        Err(e @ LoadError::LsmUnavailable { .. }) => {
            eprintln!("rtguard: {e}");
            eprintln!(
                "rtguard: refusing to run without enforcement; pass --allow-degraded to run anyway"
            );
            return exit::ENFORCEMENT_UNAVAILABLE;
        }
        Err(e) => {
            eprintln!("rtguard: {e}");
            return exit::FAILURE;
        }
    };

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rtguard: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    match runtime.block_on(serve(guard, objects)) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("rtguard: {e:#}");
            exit::FAILURE
        }
    }
}

/// Fills the maps, announces readiness and streams decisions until told to stop.
async fn serve(guard: Option<Guard>, objects: Vec<ProtectedObject>) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;

    let Some(mut guard) = guard else {
        notify("READY=1\nSTATUS=degraded: enforcement unavailable").ok();
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
        info!("stopping");
        return Ok(());
    };

    let mut paths: HashMap<InodeKey, PathBuf> = HashMap::new();
    for (rule_id, object) in (1u32..).zip(&objects) {
        guard.protect(object, rule_id)?;
        paths.insert(object.key, object.path.clone());
    }
    let verb = match guard.mode() {
        Mode::Enforce => "enforcing",
        Mode::Audit => "auditing (not blocking)",
    };
    info!(
        objects = objects.len(),
        hooks = ?guard.attached(),
        "{verb}: {} protected object(s)",
        objects.len()
    );
    notify(&format!("READY=1\nSTATUS={verb}")).ok();

    // SAFETY: the ring buffer owns its map fd, which stays open and unchanged for as long
    // as the RingBuf lives, and the AsyncFd owns the RingBuf.
    let mut ring =
        unsafe { AsyncFd::register_with_interest(guard.take_events()?, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
            .context("polling the event ring buffer")?;
    let mut reported_drops = 0u64;
    loop {
        tokio::select! {
            ready = ring.readable_mut() => {
                let mut ready = ready.context("waiting for events")?;
                let ring = ready.get_inner_mut();
                while let Some(item) = ring.next() {
                    match events::decode(&item) {
                        Ok(ev) => {
                            let path = paths.get(&ev.target).map(|p| p.display().to_string()).unwrap_or_default();
                            warn!(
                                decision = ev.decision.as_str(),
                                op = ev.op.as_str(),
                                path,
                                dev = format_args!("{}:{}", ev.target.major(), ev.target.minor()),
                                ino = ev.target.ino,
                                pid = ev.tgid,
                                uid = ev.uid,
                                comm = ev.comm,
                                "{} {} of a protected object", ev.decision.as_str(), ev.op.as_str()
                            );
                        }
                        Err(e) => error!("undecodable event: {e}"),
                    }
                }
                ready.clear_ready();
                let dropped = guard.dropped_events()?;
                if dropped > reported_drops {
                    warn!(dropped = dropped - reported_drops, "events lost: the ring buffer was full");
                    reported_drops = dropped;
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    info!("stopping: detaching programs");
    drop(guard);
    Ok(())
}

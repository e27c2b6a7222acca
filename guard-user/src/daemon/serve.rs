//! The serve loop: fill the maps, announce readiness, then record the kernel's decisions
//! and follow the host (upgrades, mounts, configuration edits, windows, SIGHUP), and
//! prove enforcement again at a fixed interval, until SIGTERM or SIGINT.

use std::{path::Path, time::Duration};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, SignalKind},
    time::Instant,
};
use tracing::{info, warn};

use super::{
    census::{find_cgroup2_root, CENSUS_INTERVAL},
    layers,
    reload::until,
    status::GuardState,
    watch::{changed_mount_points, editable_files, mounts_on_protected},
    Daemon,
};
use crate::{
    audit::config_history::Watcher,
    host::{mount_table::MountTable, nftables::NftMonitor, notify::notify},
    loader::Guard,
    tables::KernelTables,
};

/// After the package manager replaced a protected file, wait this long for it to finish
/// the batch, then protect the new inodes. dpkg renames files one by one; waiting a
/// little lets one re-resolution cover many.
const RESYNC_DELAY: Duration = Duration::from_millis(200);
/// How often to look whether a package command the exec layer let through has ended. The
/// files it installs are new inodes that no event announces, so the policy is resolved
/// again once it has; not before, when half-unpacked `*.dpkg-new` files would match
/// the policy's globs and be protected in dpkg's way.
const OPERATION_POLL: Duration = Duration::from_millis(500);
/// After nf_tables announced a change, wait this long for the rest of its burst, then
/// read the protected chains and sets again. dockerd creates its chains one command at a
/// time; a chain is refused by name from the start whether or not it is mirrored yet.
pub(super) const NFT_RESYNC_DELAY: Duration = Duration::from_millis(20);

impl Daemon {
    /// Fills the maps, announces readiness and streams decisions until told to stop.
    pub(super) async fn serve(
        mut self,
        loaded: Option<(Guard, RingBuf<MapData>)>,
        tables: KernelTables,
    ) -> anyhow::Result<()> {
        let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;

        let Some((mut guard, ring)) = loaded else {
            self.published.startup = self.stopwatch.steps.clone();
            self.publish();
            notify(&format!(
                "READY=1\nSTATUS=degraded: {}",
                self.published.reason
            ))
            .ok();
            tokio::select! {
                _ = sigterm.recv() => {}
                _ = sigint.recv() => {}
            }
            info!("stopping");
            std::fs::remove_file(&self.status_file).ok();
            return Ok(());
        };

        self.install(&mut guard, tables)?;
        self.stopwatch.lap("maps");
        self.persist(&mut guard)?;
        if self.published.pinned.is_some() {
            self.stopwatch.lap("pins");
        }
        self.published.startup = self.stopwatch.steps.clone();
        self.published.layers = layers(guard.attached());
        self.published.mechanism = Some(guard.mechanism().as_str().to_owned());
        self.published.file_hooks = Some(guard.file_hooks().as_str().to_owned());
        self.published.tree_cache = Some(guard.tree_cache().to_string());
        self.published.sysctls = Some(guard.sysctl_guard().to_string());
        let verb = match self.published.state {
            GuardState::Enforcing => "enforcing",
            GuardState::Auditing => "auditing (not blocking)",
            GuardState::Degraded => "degraded",
        };
        let counts = &self.published.protected;
        info!(
            inodes = counts.inodes,
            trees = counts.trees,
            mechanism = guard.mechanism().as_str(),
            file_hooks = guard.file_hooks().as_str(),
            startup_ms = self.stopwatch.total_ms(),
            "{verb}: {} protected inode(s) (objects and their ancestors), {} tree(s)",
            counts.inodes,
            counts.trees
        );
        self.publish();
        let started = format!("{verb} ({})", guard.mechanism_summary());
        self.trail.started(
            &started,
            &guard.mechanism_why().to_string(),
            self.published.state == GuardState::Enforcing,
        );
        notify(&format!("READY=1\nSTATUS={started}")).ok();
        let cgroup_root = find_cgroup2_root();
        let mut census_at = Instant::now();

        // SAFETY: the ring buffer owns its map fd, which stays open and unchanged for as
        // long as the RingBuf lives, and the AsyncFd owns the RingBuf.
        let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
            .context("polling the event ring buffer")?;
        let mut resync_at: Option<Instant> = None;
        // What the next resync follows, for the log.
        let mut resync_cause = "";
        let mut operations_at: Option<Instant> = None;
        let mut last_publish = Instant::now();
        // Configuration files: a version is kept after every change. Without inotify
        // the guard still protects them; only the history is missing.
        // SAFETY: the watcher owns its inotify fd, which stays open and unchanged for as
        // long as the watcher lives, and the AsyncFd owns the watcher.
        let mut config_watch = match Watcher::new().map_err(std::io::Error::from).and_then(|w| {
            unsafe { AsyncFd::register_with_interest(w, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)
        }) {
            Ok(watch) => Some(watch),
            Err(e) => {
                warn!("configuration edits are not kept (rtguard config): {e}");
                None
            }
        };
        // Filesystems mounted on protected paths after the start (a data disk on
        // /var/lib/docker) are resolved again within the moment.
        // SAFETY: the table owns its file, which stays open and unchanged for as long as
        // the table lives, and the AsyncFd owns the table.
        let mut mount_watch = match MountTable::open().and_then(|table| {
            unsafe { AsyncFd::register_with_interest(table, Interest::PRIORITY) }
                .map_err(|e| e.into_parts().1)
        }) {
            Ok(watch) => Some(watch),
            Err(e) => {
                warn!("filesystems mounted on protected paths after start are not noticed: {e}");
                None
            }
        };
        let mut nft_watch = watch_nftables();
        let mut nft_resync_at: Option<Instant> = None;
        // Enforcement is proven again on the canaries at a fixed interval (and after every
        // reload): it can stop under a running guard with every program still attached.
        let mut proof_at = Instant::now() + self.proof_interval;
        let mut mounts_seen = mounts_on_protected(&mut mount_watch, guard.installed());
        // Mount changes the next resolution follows, for its audit record.
        let mut mounts_pending: Vec<String> = Vec::new();
        let mut watched_generation = None;
        loop {
            if std::mem::take(&mut self.resolve_again) && resync_at.is_none() {
                resync_at = Some(Instant::now() + RESYNC_DELAY);
                resync_cause = "files replaced while the policy was resolved";
            }
            if watched_generation != Some(self.tables_generation) {
                if let Some(watch) = &mut config_watch {
                    watch
                        .get_mut()
                        .watch(editable_files(guard.installed()), &self.history);
                }
                watched_generation = Some(self.tables_generation);
            }
            let config_edit = async {
                match &mut config_watch {
                    Some(watch) => watch.readable_mut().await,
                    None => std::future::pending().await,
                }
            };
            let resync = deadline(resync_at);
            let nft_change = async {
                match &mut nft_watch {
                    Some(watch) => watch.readable_mut().await,
                    None => std::future::pending().await,
                }
            };
            let nft_resync = deadline(nft_resync_at);
            let operations = deadline(operations_at);
            let mount_change = async {
                match &mount_watch {
                    Some(watch) => watch
                        .ready(Interest::PRIORITY)
                        .await
                        .map(|mut r| r.clear_ready()),
                    None => std::future::pending().await,
                }
            };
            let expiry = until(self.windows.next_expiry());
            let proof_due = deadline(Some(proof_at));
            let census_due = deadline(cgroup_root.is_some().then_some(census_at));
            let notice_due = deadline(
                (self.notices.as_ref())
                    .and_then(|n| n.due())
                    .map(Instant::from_std),
            );
            tokio::select! {
                ready = ring.readable_mut() => {
                    let mut ready = ready.context("waiting for events")?;
                    // Readiness is cleared before the drain, not after: the kernel wakes the
                    // reader only when it had caught up, so an event queued between the
                    // drain's end and a later clear would wait for the next wake-up, with
                    // its record and its notice, for as long as nothing else happens.
                    ready.clear_ready();
                    if self.drain_events(ready.get_inner_mut(), &guard.installed().legend) && resync_at.is_none() {
                        resync_at = Some(Instant::now() + RESYNC_DELAY);
                        resync_cause = "the package manager replaced protected files";
                    }
                    if !self.package_operations.is_empty() {
                        operations_at.get_or_insert_with(|| Instant::now() + OPERATION_POLL);
                    }
                    self.account_drops(&guard)?;
                    // Counters change with every event; publish them at most once a second.
                    if last_publish.elapsed() >= Duration::from_secs(1) {
                        self.publish();
                        last_publish = Instant::now();
                    }
                }
                ready = config_edit => {
                    let mut ready = ready.context("waiting for configuration edits")?;
                    ready.clear_ready();
                    ready.get_inner_mut().drain(&self.history);
                }
                changed = mount_change => {
                    changed.context("watching the mount table")?;
                    let now = mounts_on_protected(&mut mount_watch, guard.installed());
                    if now != mounts_seen {
                        let points = changed_mount_points(&mounts_seen, &now);
                        info!("mount table changed on protected paths: {}", points.join(", "));
                        mounts_pending.extend(points);
                        mounts_seen = now;
                        resync_at = Some(Instant::now());
                        resync_cause = "a mount on a protected path";
                    }
                }
                ready = nft_change => {
                    let mut ready = ready.context("watching nf_tables")?;
                    ready.clear_ready();
                    // One commit announces every object it touched: read the ruleset
                    // once the burst is over.
                    if ready.get_inner().drain() {
                        nft_resync_at.get_or_insert_with(|| Instant::now() + NFT_RESYNC_DELAY);
                    }
                }
                _ = nft_resync => {
                    nft_resync_at = None;
                    guard.sync_netfilter()?;
                    self.published.netfilter = Some(guard.netfilter_status());
                    self.publish();
                }
                _ = expiry => self.expire_windows(&mut guard)?,
                _ = resync => {
                    resync_at = None;
                    match self.source.resolve(&self.windows) {
                        Ok(tables) => {
                            self.install(&mut guard, tables)?;
                            // The protected paths may be others now.
                            mounts_seen = mounts_on_protected(&mut mount_watch, guard.installed());
                            info!("re-protected after {resync_cause}");
                            if !mounts_pending.is_empty() {
                                self.trail.mounts_changed(&std::mem::take(&mut mounts_pending));
                            }
                        }
                        // Mid-upgrade a file can be briefly absent; try again shortly.
                        Err(e) => {
                            warn!("re-resolving after an upgrade: {e}; retrying");
                            resync_at = Some(Instant::now() + RESYNC_DELAY);
                        }
                    }
                }
                _ = operations => {
                    // A package installed from scratch (after a removal, or for the first
                    // time) brings inodes no event points at: resolve again once the
                    // command that installs it has ended.
                    self.package_operations
                        .retain(|tgid| Path::new("/proc").join(tgid.to_string()).exists());
                    operations_at = if self.package_operations.is_empty() {
                        resync_at = Some(Instant::now());
                        resync_cause = "a package command the exec layer let through ended";
                        None
                    } else {
                        Some(Instant::now() + OPERATION_POLL)
                    };
                }
                _ = notice_due => self.write_notices(false),
                _ = census_due => {
                    if let Some(root) = &cgroup_root {
                        self.census(&mut guard, root);
                    }
                    census_at = Instant::now() + CENSUS_INTERVAL;
                }
                _ = proof_due => {
                    self.prove(&mut guard, ring.get_mut());
                    proof_at = Instant::now() + self.proof_interval;
                }
                _ = sighup.recv() => {
                    self.reload(&mut guard)?;
                    // What was reloaded is proven at once, and the mode it put the kernel
                    // in is published with it.
                    self.prove(&mut guard, ring.get_mut());
                    proof_at = Instant::now() + self.proof_interval;
                }
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
        // Decisions made before the signal are still in the ring buffer: record them, and
        // account for any the kernel could not queue, so the log adds up.
        self.drain_events(ring.get_mut(), &guard.installed().legend);
        self.account_drops(&guard)?;
        self.trail.flush_drops();
        self.write_notices(true);
        match &self.published.pinned {
            Some(dir) => info!(
                "stopping: the programs stay attached, pinned under {dir}; `rtguard unload` removes them"
            ),
            None => info!("stopping: detaching programs"),
        }
        drop(guard);
        std::fs::remove_file(&self.status_file).ok();
        Ok(())
    }
}

/// Sleeps until `at`, or forever when there is no deadline.
/// The protected chains and sets that exist are read again after every change nf_tables
/// commits (dockerd creating its chains after the start): this is readable then.
pub(super) fn watch_nftables() -> Option<AsyncFd<NftMonitor>> {
    // SAFETY: the monitor owns its socket, which stays open and unchanged for as long as
    // the monitor lives, and the AsyncFd owns the monitor.
    match NftMonitor::open().and_then(|m| {
        unsafe { AsyncFd::register_with_interest(m, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
    }) {
        Ok(watch) => Some(watch),
        Err(e) => {
            warn!("chains and sets created after the start are not noticed: {e}");
            None
        }
    }
}

pub(super) async fn deadline(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

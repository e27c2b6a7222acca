//! Degraded mode in userspace: turns observed syscalls into "would block" decisions by
//! matching their paths against the resolved tables.
//!
//! The kernel decides by (dev, ino); here only paths are known, and only after the fact,
//! so hard links, bind mounts and chroots can slip past. That is why these records say
//! `enforced: false` and the daemon reports itself degraded.

use std::{
    collections::HashMap,
    os::unix::ffi::OsStrExt as _,
    path::{Component, Path, PathBuf},
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use guard_common::{
    degraded::{Syscall, SyscallEvent, EXEC_ARGS, EXEC_ARG_LEN},
    FileOp, FileProtection,
};
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, SignalKind},
    time::Instant,
};
use tracing::{error, info, warn};

use super::{
    decisions::log_netfilter_decision,
    serve::{deadline, watch_nftables, NFT_RESYNC_DELAY},
    status::ProtectedCounts,
};
use crate::{
    events::{self, c_string, Event},
    host::notify::notify,
    loader::degraded::Observer,
    tables::KernelTables,
};

/// unlinkat's flag for removing a directory.
const AT_REMOVEDIR: u64 = 0x200;
/// `RENAME_EXCHANGE` in renameat2's flags.
const RENAME_EXCHANGE: u64 = 1 << 1;
/// The directory-fd value meaning "relative to the working directory".
const AT_FDCWD: i64 = -100;
/// Processes whose arguments are remembered for the records of their later syscalls.
const ARGV_CACHE: usize = 4096;

/// A decoded syscall observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub syscall: Syscall,
    pub tgid: u32,
    pub uid: u32,
    pub comm: String,
    pub dfd: i64,
    pub dfd2: i64,
    pub flags: u64,
    pub path: String,
    pub path2: String,
    /// For the arguments record of an execve.
    pub argv: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObservationError {
    #[error("syscall record of {0} bytes, expected {1}")]
    Size(usize, usize),
    #[error("unknown syscall {0} in record")]
    Unknown(u32),
}

pub fn decode(bytes: &[u8]) -> Result<Observed, ObservationError> {
    let expected = std::mem::size_of::<SyscallEvent>();
    if bytes.len() != expected {
        return Err(ObservationError::Size(bytes.len(), expected));
    }
    // SAFETY: plain old data of exactly this size.
    let raw: SyscallEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let syscall = Syscall::from_u32(raw.syscall).ok_or(ObservationError::Unknown(raw.syscall))?;
    let argv = if syscall == Syscall::Execve && raw.flags == 1 {
        raw.path2
            .chunks(EXEC_ARG_LEN)
            .take(EXEC_ARGS)
            .map(c_string)
            .take_while(|a| !a.is_empty())
            .collect()
    } else {
        Vec::new()
    };
    Ok(Observed {
        syscall,
        tgid: raw.tgid,
        uid: raw.uid,
        comm: c_string(&raw.comm),
        dfd: raw.dfd,
        dfd2: raw.dfd2,
        flags: raw.flags,
        path: c_string(&raw.path),
        path2: if syscall == Syscall::Execve {
            String::new()
        } else {
            c_string(&raw.path2)
        },
        argv,
    })
}

impl Observed {
    /// The file operations this syscall performs, each with the path it acts on.
    pub fn operations(&self) -> Vec<(FileOp, &str, i64)> {
        match self.syscall {
            Syscall::Unlinkat if self.flags & AT_REMOVEDIR != 0 => {
                vec![(FileOp::Rmdir, &self.path, self.dfd)]
            }
            Syscall::Unlinkat | Syscall::Unlink => vec![(FileOp::Unlink, &self.path, self.dfd)],
            Syscall::Rmdir => vec![(FileOp::Rmdir, &self.path, self.dfd)],
            Syscall::Renameat2 | Syscall::Renameat | Syscall::Rename => {
                // Landing on a file from its own directory is a replacement, which
                // configuration files allow; an exchange moves the target away too.
                let exchange =
                    self.syscall == Syscall::Renameat2 && self.flags & RENAME_EXCHANGE != 0;
                let same_dir = self.dfd == self.dfd2
                    && Path::new(&self.path).parent() == Path::new(&self.path2).parent();
                let over = if same_dir && !exchange {
                    FileOp::Replace
                } else {
                    FileOp::Rename
                };
                vec![
                    (FileOp::Rename, &self.path, self.dfd),
                    (over, &self.path2, self.dfd2),
                ]
            }
            Syscall::OpenatWrite => vec![(FileOp::OpenWrite, &self.path, self.dfd)],
            Syscall::Truncate => vec![(FileOp::Truncate, &self.path, self.dfd)],
            Syscall::Execve => Vec::new(),
        }
    }
}

/// The policy's objects, ancestors and trees by path.
#[derive(Debug, Default)]
pub struct PathMatcher {
    inodes: HashMap<PathBuf, FileProtection>,
    trees: Vec<(PathBuf, FileProtection)>,
}

impl PathMatcher {
    pub fn from_tables(tables: &KernelTables) -> Self {
        let mut m = PathMatcher::default();
        for (key, protection) in &tables.inodes {
            if let Some(path) = tables.legend.paths.get(key) {
                m.inodes.insert(normalize(path), *protection);
            }
        }
        for (key, protection) in &tables.trees {
            if let Some(path) = tables.legend.paths.get(key) {
                m.trees.push((normalize(path), *protection));
            }
        }
        for (key, &rule_id) in &tables.excluded_children {
            let Some(tree) = tables.legend.paths.get(&key.tree) else {
                continue;
            };
            let len = key
                .name
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(key.name.len());
            let name = std::ffi::OsStr::from_bytes(&key.name[..len]);
            let excluded = FileProtection {
                rule_id,
                ops: 0,
                flags: guard_common::file::FILE_TREE_EXCLUDED,
                package: guard_common::file::NO_PACKAGE,
            };
            m.trees.push((normalize(&tree.join(name)), excluded));
        }
        // Innermost tree first, so an excluded subtree wins over the tree around it.
        m.trees
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        m
    }

    /// The rule that would refuse `op` on `path`, if any.
    pub fn check(&self, op: FileOp, path: &Path) -> Option<u32> {
        if let Some(p) = self.inodes.get(path) {
            if p.denies(op) {
                return Some(p.rule_id);
            }
        }
        for (root, p) in &self.trees {
            if path.starts_with(root) {
                if p.flags & guard_common::file::FILE_TREE_EXCLUDED != 0 {
                    return None;
                }
                if p.denies(op) {
                    return Some(p.rule_id);
                }
            }
        }
        None
    }
}

/// The absolute path a syscall named, resolved against the caller's working directory
/// or directory fd (best effort: the process may be gone). Symlinks in the parent are
/// resolved where the parent still exists; the last component is kept as named.
pub fn absolute(tgid: u32, dfd: i64, raw: &str) -> Option<PathBuf> {
    if raw.is_empty() {
        return None;
    }
    let named = Path::new(raw);
    let joined = if named.is_absolute() {
        named.to_owned()
    } else {
        let base = if dfd == AT_FDCWD {
            std::fs::read_link(format!("/proc/{tgid}/cwd")).ok()?
        } else {
            std::fs::read_link(format!("/proc/{tgid}/fd/{dfd}")).ok()?
        };
        base.join(named)
    };
    let lexical = normalize(&joined);
    match (lexical.parent(), lexical.file_name()) {
        (Some(parent), Some(name)) => Some(
            std::fs::canonicalize(parent)
                .map(|p| p.join(name))
                .unwrap_or(lexical.clone()),
        ),
        _ => Some(lexical),
    }
}

/// Removes `.` and resolves `..` without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Command lines of recently started processes, from their execve records.
#[derive(Debug, Default)]
pub struct ArgvCache {
    by_tgid: HashMap<u32, Vec<String>>,
}

impl ArgvCache {
    pub fn remember(&mut self, tgid: u32, argv: Vec<String>) {
        if self.by_tgid.len() >= ARGV_CACHE {
            self.by_tgid.clear();
        }
        self.by_tgid.insert(tgid, argv);
    }

    pub fn get(&self, tgid: u32) -> Option<&Vec<String>> {
        self.by_tgid.get(&tgid)
    }
}

/// Degraded mode in the daemon.
impl super::Daemon {
    /// Degraded mode: no enforcement; syscall tracepoints report destructive file
    /// syscalls, matched against the policy by path and recorded as would-block with
    /// `enforced: false`.
    pub(super) async fn observe(
        mut self,
        mut observer: Observer,
        tables: KernelTables,
    ) -> anyhow::Result<()> {
        let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let matcher = PathMatcher::from_tables(&tables);
        // Watched before the first read, so that no change falls between the two.
        let mut nft_watch = watch_nftables();
        if let Err(e) = observer.sync_netfilter(&tables) {
            warn!("netfilter batches are not observed: {e}");
        }
        self.published.netfilter = Some(observer.netfilter_status());
        self.published.layers = vec![(
            "observed (not enforced)".to_owned(),
            observer.attached().iter().map(|t| t.to_string()).collect(),
        )];
        self.published.protected = ProtectedCounts::of(&tables);
        self.published.startup = self.stopwatch.steps.clone();
        self.publish();
        notify(&format!(
            "READY=1\nSTATUS=degraded: {}; observing syscalls, nothing is blocked",
            self.published.reason
        ))
        .ok();
        // SAFETY: as in serve(): the AsyncFd owns the RingBuf, which owns its map fd.
        let mut ring =
            unsafe { AsyncFd::register_with_interest(observer.take_events()?, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)
                .context("polling the syscall ring buffer")?;
        // The netfilter walk's reports (the enforcing programs' ring); SAFETY as above.
        let mut decisions = unsafe {
            AsyncFd::register_with_interest(observer.take_decisions()?, Interest::READABLE)
        }
        .map_err(|e| e.into_parts().1)
        .context("polling the netfilter ring buffer")?;
        let mut nft_resync_at: Option<Instant> = None;
        let mut argv = ArgvCache::default();
        loop {
            let nft_change = async {
                match &mut nft_watch {
                    Some(watch) => watch.readable_mut().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ready = decisions.readable_mut() => {
                    let mut ready = ready.context("waiting for netfilter decisions")?;
                    ready.clear_ready();
                    self.drain_netfilter_observed(ready.get_inner_mut(), &tables);
                    self.publish();
                }
                ready = nft_change => {
                    let mut ready = ready.context("watching nf_tables")?;
                    ready.clear_ready();
                    if ready.get_inner().drain() {
                        nft_resync_at.get_or_insert_with(|| Instant::now() + NFT_RESYNC_DELAY);
                    }
                }
                _ = deadline(nft_resync_at) => {
                    nft_resync_at = None;
                    if let Err(e) = observer.sync_netfilter(&tables) {
                        warn!("nf_tables could not be read again: {e}");
                    }
                    self.published.netfilter = Some(observer.netfilter_status());
                    self.publish();
                }
                ready = ring.readable_mut() => {
                    let mut ready = ready.context("waiting for syscall events")?;
                    let before = self.published.events.would_block;
                    // Cleared before the drain: see the serve loop.
                    ready.clear_ready();
                    self.drain_observed(ready.get_inner_mut(), &matcher, &tables, &mut argv);
                    if self.published.events.would_block != before {
                        self.publish();
                    }
                }
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
        self.drain_observed(ring.get_mut(), &matcher, &tables, &mut argv);
        self.drain_netfilter_observed(decisions.get_mut(), &tables);
        info!("stopping: detaching tracepoints");
        drop(observer);
        std::fs::remove_file(&self.status_file).ok();
        Ok(())
    }

    /// Records the batches the netfilter walk would have refused, not enforced.
    fn drain_netfilter_observed(&mut self, ring: &mut RingBuf<MapData>, tables: &KernelTables) {
        while let Some(item) = ring.next() {
            match events::decode_record(&item) {
                Ok(Event::Netfilter(ev)) => {
                    log_netfilter_decision(&ev, &tables.legend);
                    self.published.events.would_block += 1;
                    self.trail.netfilter_decision(&ev, &tables.legend, false);
                }
                Ok(other) => error!("unexpected decision in degraded mode: {other:?}"),
                Err(e) => error!("undecodable event: {e}"),
            }
        }
    }

    pub(super) fn drain_observed(
        &mut self,
        ring: &mut RingBuf<MapData>,
        matcher: &PathMatcher,
        tables: &KernelTables,
        argv: &mut ArgvCache,
    ) {
        while let Some(item) = ring.next() {
            let obs = match decode(&item) {
                Ok(obs) => obs,
                Err(e) => {
                    error!("undecodable syscall event: {e}");
                    continue;
                }
            };
            if !obs.argv.is_empty() {
                argv.remember(obs.tgid, obs.argv.clone());
                continue;
            }
            for (op, raw, dfd) in obs.operations() {
                let Some(path) = absolute(obs.tgid, dfd, raw) else {
                    continue;
                };
                let Some(rule_id) = matcher.check(op, &path) else {
                    continue;
                };
                let rule = tables.legend.rule(rule_id).unwrap_or("?");
                warn!(
                    decision = "would-block",
                    enforced = false,
                    op = op.as_str(),
                    rule,
                    path = %path.display(),
                    pid = obs.tgid,
                    comm = obs.comm,
                    "would-block {} of a protected object (not enforced: degraded mode)",
                    op.as_str()
                );
                self.published.events.would_block += 1;
                self.trail.observed(
                    op,
                    rule,
                    &path,
                    (obs.tgid, obs.uid, &obs.comm),
                    argv.get(obs.tgid),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use guard_common::{
        file::{FILE_TREE_EXCLUDED, OPS_ALL, OPS_ANCESTOR, OPS_REMOVE},
        InodeKey,
    };

    use super::*;

    fn protection(rule_id: u32, ops: u32, flags: u32) -> FileProtection {
        FileProtection {
            rule_id,
            ops,
            flags,
            package: guard_common::file::NO_PACKAGE,
        }
    }

    fn tables() -> KernelTables {
        let mut t = KernelTables::default();
        let mut add = |ino, path: &str, p, tree: bool| {
            let key = InodeKey::new(1, ino);
            t.legend.paths.insert(key, PathBuf::from(path));
            if tree {
                t.trees.insert(key, p);
            } else {
                t.inodes.insert(key, p);
            }
        };
        add(1, "/usr/bin/containerd", protection(1, OPS_ALL, 0), false);
        add(2, "/usr/bin", protection(1, OPS_ANCESTOR, 0), false);
        add(3, "/var/lib/docker", protection(2, OPS_REMOVE, 0), true);
        add(
            4,
            "/var/lib/docker/volumes",
            protection(2, 0, FILE_TREE_EXCLUDED),
            true,
        );
        t
    }

    #[test]
    fn matches_objects_ancestors_and_trees_by_path() {
        let m = PathMatcher::from_tables(&tables());
        assert_eq!(
            m.check(FileOp::Unlink, Path::new("/usr/bin/containerd")),
            Some(1)
        );
        assert_eq!(m.check(FileOp::Rename, Path::new("/usr/bin")), Some(1));
        assert_eq!(m.check(FileOp::Unlink, Path::new("/usr/bin/other")), None);
        assert_eq!(
            m.check(FileOp::Unlink, Path::new("/var/lib/docker/image/x")),
            Some(2)
        );
        assert_eq!(
            m.check(FileOp::OpenWrite, Path::new("/var/lib/docker/image/x")),
            None
        );
        assert_eq!(
            m.check(
                FileOp::Unlink,
                Path::new("/var/lib/docker/volumes/v/_data/f")
            ),
            None
        );
    }

    #[test]
    fn resolves_dot_dot_and_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(real.join("sub")).unwrap();
        let raw = format!("{}/sub/../x", real.display());
        assert_eq!(
            absolute(std::process::id(), AT_FDCWD, &raw),
            Some(real.join("x"))
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            absolute(std::process::id(), AT_FDCWD, "some-file"),
            Some(std::fs::canonicalize(&cwd).unwrap().join("some-file"))
        );
    }
}

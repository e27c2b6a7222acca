//! Loader: resolves kernel offsets, loads the embedded programs, attaches them, and keeps
//! the programs' maps in step with the kernel tables userspace resolved. It knows the
//! kernel, not the policy: what the tables mean is decided in [`crate::tables`].
//!
//! - [`Guard`] (here) holds the loaded programs, their links and the installed tables;
//! - `attach`: verification, attachment, and why a refusal happened;
//! - [`mechanism`]: BPF LSM or fmod_ret, and the active LSM list;
//! - [`kernel_btf`]: the kernel's BTF, parsed once per start; [`offsets`]: kernel struct
//!   offsets from it; [`fs_layout`]: btrfs's identities;
//! - `sync`: map contents brought to the tables without a gap;
//! - [`pins`]: enforcement that outlives the process; [`degraded`]: degraded mode's
//!   syscall tracepoints; [`mounts`]: the filesystems the programs need.

mod attach;
pub mod degraded;
pub mod fs_layout;
pub mod kernel_btf;
pub mod mechanism;
pub mod modify_return;
pub mod mounts;
mod netfilter;
pub mod offsets;
pub mod pins;
mod sync;
pub mod sysctl;

use std::{
    cell::OnceCell,
    collections::BTreeMap,
    os::fd::{AsFd, OwnedFd},
};

use aya::{
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{
        fexit::FExitLinkId,
        links::{FdLink, PinnedLink},
        lsm::LsmLinkId,
        FExit, Lsm, ProgramError,
    },
    Ebpf, EbpfLoader,
};
use guard_common::{names, InodeKey};
use tracing::{info, warn};

use self::{
    attach::program_mut,
    kernel_btf::KernelBtf,
    sync::{array_mut, map_err},
};
use crate::tables::KernelTables;

/// Whether matching operations are denied or only reported: the policy's word for it.
pub use crate::policy::Mode;
pub use mechanism::{active_lsms, bpf_lsm_inactive, Mechanism, MechanismChoice};
pub use modify_return::ModifyReturnError;
pub use netfilter::{NetfilterMaps, NetfilterMirror};
pub use offsets::{has_hook, offsets_from, resolve_offsets, OffsetError, KERNEL_BTF};
pub use pins::{Generation, PinDir, PinsError};
pub use sysctl::SysctlGuard;

/// The exec layer's decision (an LSM hook, like the file layer's and the process layer's).
const EXEC_HOOK: &str = "bprm_check_security";
/// The netfilter layer: what a `sendmsg` on a netlink socket carries.
const NETFILTER_HOOK: &str = "netlink_send";
/// The process layer: signals, and ptrace attaches.
const PROCESS_HOOKS: &[&str] = &["task_kill", "ptrace_access_check"];
/// Hooks of the file layer that older kernels do not have: attached where they exist.
/// `inode_set_acl` arrived in Linux 6.2 (before it, ACLs go through `inode_setxattr`),
/// `inode_file_setattr` in 6.17 (before it, inode flags change only by ioctl).
pub const OPTIONAL_HOOKS: &[&str] = &["inode_set_acl", "inode_file_setattr"];
/// The tree-walk cache's rename watcher: (program, kernel function it runs after).
pub const RENAME_WATCH: (&str, &str) = ("vfs_rename_done", "vfs_rename");

/// The LSM hooks the enforcing programs attach to, `file_hooks` for the file layer, in the
/// order they load. The optional hooks are among them: they attach where the kernel has
/// them.
pub fn lsm_hooks(file_hooks: FileHooks) -> impl Iterator<Item = &'static str> {
    file_hooks
        .hooks()
        .iter()
        .chain([&EXEC_HOOK])
        .chain(PROCESS_HOOKS)
        .chain([&NETFILTER_HOOK])
        .copied()
}

/// A ring buffer's smallest size: one page.
const UNUSED_RING_BYTES: u32 = 4096;

/// The kernel's internal ENOTSUPP (524), which leaks to userspace from BPF attach paths
/// and has no libc name.
const KERNEL_ENOTSUPP: i32 = 524;

/// Which LSM hooks carry the file layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileHooks {
    /// `security_path_*` (needs CONFIG_SECURITY_PATH), plus `file_open`.
    Path,
    /// `security_inode_*`, plus `file_open`: the fallback.
    Inode,
}

impl FileHooks {
    /// The programs (named after their hooks) that make up the set.
    pub const fn hooks(self) -> &'static [&'static str] {
        match self {
            FileHooks::Path => &[
                "path_unlink",
                "path_rmdir",
                "path_rename",
                "path_truncate",
                "path_chmod",
                "path_chown",
                "path_symlink",
                "path_mknod",
                "path_mkdir",
                "path_link",
                "file_open",
                "sb_mount",
                "move_mount",
                "sb_umount",
                "inode_setxattr",
                "inode_set_acl",
                "file_ioctl",
                "inode_file_setattr",
            ],
            FileHooks::Inode => &[
                "inode_unlink",
                "inode_rmdir",
                "inode_rename",
                "inode_setattr",
                "inode_create",
                "inode_symlink",
                "inode_mkdir",
                "inode_mknod",
                "inode_link",
                "file_open",
                "sb_mount",
                "move_mount",
                "sb_umount",
                "inode_setxattr",
                "inode_set_acl",
                "file_ioctl",
                "inode_file_setattr",
            ],
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            FileHooks::Path => "path",
            FileHooks::Inode => "inode",
        }
    }
}

/// Whether the tree-walk cache is in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeCache {
    On,
    /// Every check walks up to the filesystem's root; correct, only slower.
    Off {
        reason: String,
    },
}

impl std::fmt::Display for TreeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TreeCache::On => f.write_str("on"),
            TreeCache::Off { reason } => write!(f, "off ({reason})"),
        }
    }
}

/// The operator's choice of file hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookChoice {
    /// `path` where the kernel has it, else `inode`.
    Auto,
    Only(FileHooks),
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel runs neither BPF LSM nor fmod_ret programs; nothing can be enforced on
    /// this host.
    #[error("enforcement unavailable: {reason}; rtguard cannot block anything on this host")]
    EnforcementUnavailable { reason: String },
    #[error(transparent)]
    Mount(#[from] mounts::MountError),
    #[error("the kernel has no security_path_* hooks (built without CONFIG_SECURITY_PATH); use --file-hooks inode or auto")]
    NoPathHooks,
    #[error(transparent)]
    ModifyReturn(#[from] ModifyReturnError),
    #[error(transparent)]
    Offsets(#[from] OffsetError),
    #[error("cannot parse kernel BTF for program load: {0}")]
    Btf(#[from] aya::BtfError),
    #[error("cannot load the kernel programs: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("program {hook}: {}", program_error_text(source))]
    Program {
        hook: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map {0} is missing from the kernel object")]
    MissingMap(&'static str),
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("pinning the link of {program}: {source}")]
    PinLink {
        program: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Lines of a refused program's verifier log kept in the error. The log traces every
/// instruction the verifier walked and can run to megabytes; its last lines say why.
const VERIFIER_LOG_TAIL: usize = 40;

/// A program error as operators read it: a refused load's verifier log cut to its end.
fn program_error_text(error: &ProgramError) -> String {
    match error {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(VERIFIER_LOG_TAIL)..].join("\n");
            format!(
                "the kernel refused it ({io_error}); the verifier's log, last {} of {} lines:\n{tail}",
                lines.len().min(VERIFIER_LOG_TAIL),
                lines.len()
            )
        }
        other => other.to_string(),
    }
}

/// The loaded, attached programs and their maps. Dropping it detaches everything that
/// is not pinned.
pub struct Guard {
    ebpf: Ebpf,
    mode: Mode,
    mechanism: Mechanism,
    /// Why this mechanism.
    mechanism_why: mechanism::Why,
    file_hooks: FileHooks,
    attached: Vec<&'static str>,
    lsm_links: Vec<(&'static str, LsmLinkId)>,
    /// The enforcing programs' links under fmod_ret, by hook.
    modify_return_links: Vec<(&'static str, OwnedFd)>,
    /// The tree-walk cache's rename watcher, when it attached.
    rename_watch: Option<FExitLinkId>,
    tree_cache: TreeCache,
    /// The sysctls the programs depend on: refused, or why not.
    sysctl_guard: SysctlGuard,
    /// Links pinned with [`Guard::pin_links`]: they stay attached after the daemon.
    pinned: Vec<PinnedLink>,
    installed: KernelTables,
    /// The cgroups that hold protected processes, as last put in the kernel's map (the
    /// rule), and where they are.
    protected_cgroups: BTreeMap<InodeKey, (u32, std::path::PathBuf)>,
    /// The netfilter config as last written, and what the mirror of protected chains
    /// and sets holds.
    netfilter: NetfilterMaps,
}

impl Guard {
    /// Loads and attaches the file, exec and process layers on the running kernel, with
    /// the mechanism `mechanism` picks ([`mechanism::choose`]). With a generation, the
    /// maps a successor reads ([`pins::PINNED_MAPS`]) are pinned in it from the start.
    ///
    /// `lap` is called as each step ends, for the start-up report: "btf" (the kernel's
    /// BTF parsed), "object" (maps created, globals written), "verify" (every program
    /// loaded, which is where the kernel verifies it) and "attach"; when BPF LSM is
    /// refused and fmod_ret is tried, "bpf-lsm refused" ends the first attempt.
    pub fn load(
        mode: Mode,
        choice: HookChoice,
        mechanism: MechanismChoice,
        generation: Option<&Generation>,
        lap: &mut dyn FnMut(&'static str),
    ) -> Result<Self, LoadError> {
        // The active LSM list picks the mechanism; it lives in securityfs.
        if let Err(e) = mounts::securityfs() {
            warn!("{e}");
        }
        let lsms = active_lsms();
        let (chosen, why) = mechanism::choose(mechanism, &lsms);
        info!(mechanism = chosen.as_str(), "{why}");
        let (kernel, loader) = std::thread::scope(|scope| {
            // aya 0.14's `EbpfLoader::new` parses the kernel's BTF on its own, and nothing
            // can skip that parse or borrow its result (`btf()` only replaces it): let it
            // run while the index is read. Programs and loader then share `kernel.aya`.
            let loader = scope.spawn(EbpfLoader::new);
            let kernel = KernelBtf::read();
            let loader = loader.join().expect("the loader-creating thread panicked");
            (kernel, loader)
        });
        let kernel = kernel?;
        // Declared before the loader, which borrows them.
        let globals: [OnceCell<attach::Globals>; 2] = Default::default();
        let mut loader: EbpfLoader<'_> = loader;
        loader.btf(Some(&kernel.aya));
        lap("btf");
        let mut attempt = |n: usize, mechanism, why, lap: &mut dyn FnMut(&'static str)| {
            Self::load_with(
                mode,
                choice,
                mechanism,
                why,
                &lsms,
                generation,
                &kernel,
                &mut loader,
                &globals[n],
                lap,
            )
        };
        match attempt(0, chosen, why, lap) {
            // `bpf` is listed, yet the kernel refused the LSM programs: fmod_ret may still
            // be allowed, and if not, the error says both.
            Err(LoadError::EnforcementUnavailable { reason: lsm })
                if mechanism == MechanismChoice::Auto && chosen == Mechanism::BpfLsm =>
            {
                warn!("{lsm}; trying fmod_ret");
                lap("bpf-lsm refused");
                let why = mechanism::Why::LsmRefused(lsm.clone());
                attempt(1, Mechanism::ModifyReturn, why, lap).map_err(|e| match e {
                    LoadError::EnforcementUnavailable { reason } => {
                        LoadError::EnforcementUnavailable {
                            reason: format!("{lsm}, and {reason}"),
                        }
                    }
                    other => other,
                })
            }
            other => other,
        }
    }

    /// Pins every program's link in `generation`, so the programs stay attached, and keep
    /// enforcing the maps as they are, after this process exits. Returns how many.
    pub fn pin_links(&mut self, generation: &Generation) -> Result<usize, LoadError> {
        let pin = |program: &'static str, link: FdLink| {
            link.pin(generation.link_path(program))
                .map_err(|e| LoadError::PinLink {
                    program,
                    source: Box::new(e),
                })
        };
        for (hook, id) in std::mem::take(&mut self.lsm_links) {
            let program: &mut Lsm = program_mut(&mut self.ebpf, hook)?;
            let link = program
                .take_link(id)
                .map_err(|source| LoadError::Program { hook, source })?;
            self.pinned.push(pin(hook, link.into())?);
        }
        for (hook, link) in std::mem::take(&mut self.modify_return_links) {
            let path = generation.link_path(hook);
            let pinned = modify_return::pin(link.as_fd(), &path)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                .and_then(|()| PinnedLink::from_pin(&path).map_err(|e| Box::new(e) as _))
                .map_err(|source| LoadError::PinLink {
                    program: hook,
                    source,
                })?;
            self.pinned.push(pinned);
        }
        if let Some(id) = self.rename_watch.take() {
            let name = RENAME_WATCH.0;
            let program: &mut FExit = program_mut(&mut self.ebpf, name)?;
            let link = program
                .take_link(id)
                .map_err(|source| LoadError::Program { hook: name, source })?;
            self.pinned.push(pin(name, link.into())?);
        }
        if let SysctlGuard::On { link, .. } = &mut self.sysctl_guard {
            if let Some(link) = link.take() {
                let name = sysctl::PROGRAM;
                let path = generation.link_path(name);
                let pinned = modify_return::pin(link.as_fd(), &path)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                    .and_then(|()| PinnedLink::from_pin(&path).map_err(|e| Box::new(e) as _))
                    .map_err(|source| LoadError::PinLink {
                        program: name,
                        source,
                    })?;
                self.pinned.push(pinned);
            }
        }
        Ok(self.pinned.len())
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Why [`Guard::mechanism`] was picked.
    pub fn mechanism_why(&self) -> &mechanism::Why {
        &self.mechanism_why
    }

    /// The mechanism as `rtguard status` states it: "BPF LSM", or "fmod_ret on
    /// security_* functions; bpf is not an active LSM" (with the reason it was taken).
    pub fn mechanism_summary(&self) -> String {
        match self.mechanism {
            Mechanism::BpfLsm => self.mechanism.describe().to_owned(),
            Mechanism::ModifyReturn => format!(
                "{}; {}",
                self.mechanism.describe(),
                self.mechanism_why.short()
            ),
        }
    }

    pub fn file_hooks(&self) -> FileHooks {
        self.file_hooks
    }

    /// Attached programs, by hook: the enforcing hooks (LSM or fmod_ret) and the rename
    /// watcher.
    pub fn attached(&self) -> &[&'static str] {
        &self.attached
    }

    pub fn tree_cache(&self) -> &TreeCache {
        &self.tree_cache
    }

    /// Whether the sysctls the programs depend on are protected.
    pub fn sysctl_guard(&self) -> &SysctlGuard {
        &self.sysctl_guard
    }

    /// What the maps hold now.
    pub fn installed(&self) -> &KernelTables {
        &self.installed
    }

    /// Takes the event ring buffer; the caller owns reading it.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        sync::ring_taken(&mut self.ebpf, names::EVENTS)
    }

    /// Events the kernel could not queue because the ring buffer was full, summed over CPUs.
    pub fn dropped_events(&self) -> Result<u64, LoadError> {
        let map = self
            .ebpf
            .map(names::DROPPED_EVENTS)
            .ok_or(LoadError::MissingMap(names::DROPPED_EVENTS))?;
        let counters: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(map_err(names::DROPPED_EVENTS))?;
        let per_cpu = counters
            .get(&0, 0)
            .map_err(map_err(names::DROPPED_EVENTS))?;
        Ok(per_cpu.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_hook_sets_cover_open_for_write() {
        for set in [FileHooks::Path, FileHooks::Inode] {
            assert!(set.hooks().contains(&"file_open"));
        }
    }
}

//! Loader: resolves kernel offsets, loads the embedded programs, attaches them, and keeps
//! the programs' maps in step with the kernel tables userspace resolved.

pub mod fs_layout;
pub mod mechanism;
pub mod modify_return;
pub mod mounts;
pub mod observer;
pub mod offsets;
pub mod pins;
pub mod self_test;
pub mod tables;

use std::{
    collections::BTreeSet,
    io,
    os::fd::{AsFd, OwnedFd},
    path::Path,
    sync::{Mutex, PoisonError},
};

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        fexit::FExitLinkId,
        links::{FdLink, PinnedLink},
        lsm::LsmLinkId,
        trace_point::TracePointLinkId,
        FExit, Lsm, Program, ProgramError, TracePoint,
    },
    Btf, Ebpf, EbpfLoader,
};
use guard_common::{
    exec::{BinaryEntry, ClassEntry, CommandConfig, ObjectEntry, ObjectKey, WordEntry, WordKey},
    file::{ExcludedChildKey, TREE_EPOCH_POLICY},
    names,
    rule::RuleEntry,
    FileProtection, GuardConfig, IdentityProbe, InodeKey, ProcessProtection, TrustKey,
};
use tracing::{debug, info, warn};

pub use mechanism::{Mechanism, MechanismChoice};
pub use modify_return::ModifyReturnError;
pub use offsets::{has_hook, offsets_from, resolve_offsets, OffsetError, KERNEL_BTF};
pub use pins::{Generation, PinDir, PinsError};
pub use tables::{ExecTables, KernelTables};

/// The exec layer's argv capture: (program, tracepoint category, tracepoint name).
const EXEC_CAPTURE: &[(&str, &str, &str)] = &[
    ("exec_capture_execve", "syscalls", "sys_enter_execve"),
    ("exec_capture_execveat", "syscalls", "sys_enter_execveat"),
];
/// The exec layer's decision (an LSM hook, like the file layer's and the process layer's).
const EXEC_HOOK: &str = "bprm_check_security";
/// The process layer.
const PROCESS_HOOK: &str = "task_kill";
/// The tree-walk cache's rename watcher: (program, kernel function it runs after).
const RENAME_WATCH: (&str, &str) = ("vfs_rename_done", "vfs_rename");

/// A ring buffer's smallest size: one page.
const UNUSED_RING_BYTES: u32 = 4096;

/// Where the active LSMs are listed.
const ACTIVE_LSMS: &str = "/sys/kernel/security/lsm";

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
                "file_open",
                "sb_mount",
                "move_mount",
            ],
            FileHooks::Inode => &[
                "inode_unlink",
                "inode_rmdir",
                "inode_rename",
                "inode_setattr",
                "file_open",
                "sb_mount",
                "move_mount",
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

/// Whether matching operations are denied or only reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
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
    #[error("program {hook}: {source}")]
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
    capture_links: Vec<(&'static str, TracePointLinkId)>,
    /// The tree-walk cache's rename watcher, when it attached.
    rename_watch: Option<FExitLinkId>,
    tree_cache: TreeCache,
    /// Links pinned with [`Guard::pin_links`]: they stay attached after the daemon.
    pinned: Vec<PinnedLink>,
    installed: KernelTables,
}

impl Guard {
    /// Loads and attaches the file, exec and process layers on the running kernel, with
    /// the mechanism `mechanism` picks ([`mechanism::choose`]). With a generation, the
    /// maps a successor reads ([`pins::PINNED_MAPS`]) are pinned in it from the start.
    pub fn load(
        mode: Mode,
        choice: HookChoice,
        mechanism: MechanismChoice,
        generation: Option<&Generation>,
    ) -> Result<Self, LoadError> {
        // The active LSM list picks the mechanism; it lives in securityfs.
        if let Err(e) = mounts::securityfs() {
            warn!("{e}");
        }
        let lsms = active_lsms();
        let (chosen, why) = mechanism::choose(mechanism, &lsms);
        info!(mechanism = chosen.as_str(), "{why}");
        match Self::load_with(mode, choice, chosen, why, &lsms, generation) {
            // `bpf` is listed, yet the kernel refused the LSM programs: fmod_ret may still
            // be allowed, and if not, the error says both.
            Err(LoadError::EnforcementUnavailable { reason: lsm })
                if mechanism == MechanismChoice::Auto && chosen == Mechanism::BpfLsm =>
            {
                warn!("{lsm}; trying fmod_ret");
                let why = mechanism::Why::LsmRefused(lsm.clone());
                let fallback = Mechanism::ModifyReturn;
                Self::load_with(mode, choice, fallback, why, &lsms, generation).map_err(|e| match e
                {
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

    fn load_with(
        mode: Mode,
        choice: HookChoice,
        mechanism: Mechanism,
        mechanism_why: mechanism::Why,
        lsms: &io::Result<Vec<String>>,
        generation: Option<&Generation>,
    ) -> Result<Self, LoadError> {
        let kernel_btf =
            btf_rs::Btf::from_file(KERNEL_BTF).map_err(|source| OffsetError::Read {
                path: KERNEL_BTF.into(),
                source,
            })?;
        let offsets = offsets_from(&kernel_btf, mechanism)?;
        debug!(?offsets, "resolved kernel struct offsets from BTF");
        // Read while vmlinux's BTF is at hand; the module's BTF is split BTF on top of it.
        let btrfs = fs_layout::btrfs_layout(&kernel_btf, Path::new(fs_layout::BTRFS_BTF))?;
        let path_hooks = has_hook(&kernel_btf, mechanism, "path_unlink");
        let file_hooks = match choice {
            HookChoice::Auto if path_hooks => FileHooks::Path,
            HookChoice::Auto => FileHooks::Inode,
            HookChoice::Only(FileHooks::Path) if !path_hooks => return Err(LoadError::NoPathHooks),
            HookChoice::Only(hooks) => hooks,
        };
        drop(kernel_btf);

        let config = GuardConfig {
            enforce: u32::from(mode == Mode::Enforce),
            runtime_mnt_ns: runtime_mount_namespace(),
        };
        let mut loader = EbpfLoader::new();
        loader
            // The exec captures live in task storage, for which aya has no typed map;
            // the kernel creates it all the same, and only the programs use it.
            .allow_unsupported_maps()
            .override_global(names::OFFSETS, &offsets, true)
            .override_global(names::GUARD_CONFIG, &config, true)
            // Degraded mode's ring buffer: the enforcing guard never writes it, so it gets
            // the smallest size the kernel takes instead of 256 KiB.
            .map_max_entries(names::SYSCALL_EVENTS, UNUSED_RING_BYTES);
        if let Some(generation) = generation {
            for &name in pins::PINNED_MAPS {
                loader.map_pin_path(name, generation.map_path(name));
            }
        }
        let mut ebpf = loader.load(crate::EBPF_OBJECT)?;
        if let Some(layout) = btrfs {
            fs_layout::write(&mut ebpf, layout)?;
        }
        let btf = Btf::from_sys_fs()?;
        let enforcing: Vec<&'static str> = file_hooks
            .hooks()
            .iter()
            .chain([&EXEC_HOOK, &PROCESS_HOOK])
            .copied()
            .collect();
        let captures: Vec<&'static str> = EXEC_CAPTURE.iter().map(|&(name, ..)| name).collect();
        let mut attached = Vec::new();
        let mut lsm_links = Vec::new();
        let mut modify_return_links = Vec::new();
        let mut capture_links = Vec::new();
        match mechanism {
            Mechanism::BpfLsm => {
                load_programs(&mut ebpf, &btf, &[&enforcing[..], &captures[..]].concat())?;
                for &hook in &enforcing {
                    let program: &mut Lsm = program_mut(&mut ebpf, hook)?;
                    let link = program
                        .attach()
                        .map_err(|source| LoadError::Program { hook, source })?;
                    lsm_links.push((hook, link));
                    debug!(hook, "attached LSM program");
                    attached.push(hook);
                }
            }
            Mechanism::ModifyReturn => {
                load_programs(&mut ebpf, &btf, &captures)?;
                for (hook, link) in attach_modify_return(&ebpf, &btf, &enforcing, lsms)? {
                    debug!(hook, "attached fmod_ret program");
                    modify_return_links.push((hook, link));
                    attached.push(hook);
                }
            }
        }
        // The capture runs on every exec on the host; attach it last, once the decision
        // program it feeds is in place. Tracepoints are attached through tracefs.
        mounts::tracefs()?;
        for &(name, category, tracepoint) in EXEC_CAPTURE {
            let program: &mut TracePoint = program_mut(&mut ebpf, name)?;
            let link = program
                .attach(category, tracepoint)
                .map_err(|source| LoadError::Program { hook: name, source })?;
            capture_links.push((name, link));
            debug!(tracepoint, "attached exec capture");
        }
        let (rename_watch, tree_cache) = if offsets.renamedata_old_dentry == 0 {
            let reason = "the kernel's vfs_rename takes no struct renamedata".to_owned();
            (None, TreeCache::Off { reason })
        } else {
            match attach_rename_watch(&mut ebpf, &btf) {
                Ok(link) => {
                    attached.push(RENAME_WATCH.0);
                    (Some(link), TreeCache::On)
                }
                Err(e) => {
                    warn!(error = %e, "tree-walk cache off: every check walks up to the filesystem root");
                    (
                        None,
                        TreeCache::Off {
                            reason: e.to_string(),
                        },
                    )
                }
            }
        };
        info!(
            mechanism = mechanism.as_str(),
            hooks = file_hooks.as_str(),
            programs = attached.len(),
            "file, exec and process layers attached"
        );
        Ok(Self {
            ebpf,
            mode,
            mechanism,
            mechanism_why,
            file_hooks,
            attached,
            lsm_links,
            modify_return_links,
            capture_links,
            rename_watch,
            tree_cache,
            pinned: Vec::new(),
            installed: KernelTables::default(),
        })
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
        for (name, id) in std::mem::take(&mut self.capture_links) {
            let program: &mut TracePoint = program_mut(&mut self.ebpf, name)?;
            let link = program
                .take_link(id)
                .map_err(|source| LoadError::Program { hook: name, source })?;
            // On kernels with BPF links for perf events (5.15+) a tracepoint attachment
            // is an fd link that can be pinned.
            let link = FdLink::try_from(link).map_err(|e| LoadError::PinLink {
                program: name,
                source: Box::new(e),
            })?;
            self.pinned.push(pin(name, link)?);
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

    /// What the maps hold now.
    pub fn installed(&self) -> &KernelTables {
        &self.installed
    }

    /// Brings the maps to `tables`: adds and updates what is new, then removes what is
    /// gone, so a protected object is never unprotected in between.
    pub fn install(&mut self, tables: KernelTables) -> Result<(), LoadError> {
        // The tables' keys came from stat(2): if btrfs appeared since the last look,
        // the programs must compute its identities the same way before they match them.
        if let Err(e) = self.refresh_fs_layout() {
            warn!(error = %e, "btrfs layout unknown: files on btrfs keep their superblock's device and match no protection");
        }
        {
            let mut rules: Array<&mut MapData, RuleEntry> =
                array_mut(&mut self.ebpf, names::RULES)?;
            for (&id, entry) in &tables.rules {
                rules.set(id, entry, 0).map_err(map_err(names::RULES))?;
            }
            for id in self.installed.rules.keys() {
                if !tables.rules.contains_key(id) {
                    rules
                        .set(*id, RuleEntry::default(), 0)
                        .map_err(map_err(names::RULES))?;
                }
            }
        }
        sync_hash(
            hash_mut::<InodeKey, FileProtection>(&mut self.ebpf, names::PROTECTED_INODES)?,
            names::PROTECTED_INODES,
            &self.installed.inodes,
            &tables.inodes,
        )?;
        let devices_old: BTreeSet<u32> = self.installed.tree_devices();
        let devices_new: BTreeSet<u32> = tables.tree_devices();
        {
            let mut devices: HashMap<&mut MapData, u32, u32> =
                hash_mut(&mut self.ebpf, names::TREE_DEVICES)?;
            for dev in devices_new.difference(&devices_old) {
                devices
                    .insert(dev, 1, 0)
                    .map_err(map_err(names::TREE_DEVICES))?;
            }
        }
        sync_hash(
            hash_mut::<InodeKey, FileProtection>(&mut self.ebpf, names::PROTECTED_TREES)?,
            names::PROTECTED_TREES,
            &self.installed.trees,
            &tables.trees,
        )?;
        sync_hash(
            hash_mut::<ExcludedChildKey, u32>(&mut self.ebpf, names::EXCLUDED_CHILDREN)?,
            names::EXCLUDED_CHILDREN,
            &self.installed.excluded_children,
            &tables.excluded_children,
        )?;
        {
            let mut devices: HashMap<&mut MapData, u32, u32> =
                hash_mut(&mut self.ebpf, names::TREE_DEVICES)?;
            for dev in devices_old.difference(&devices_new) {
                remove_present(&mut devices, dev, names::TREE_DEVICES)?;
            }
        }
        {
            let mut trusted: HashMap<&mut MapData, TrustKey, u32> =
                hash_mut(&mut self.ebpf, names::TRUSTED_EXES)?;
            for key in tables.trusted.difference(&self.installed.trusted) {
                trusted
                    .insert(key, 1, 0)
                    .map_err(map_err(names::TRUSTED_EXES))?;
            }
            for key in self.installed.trusted.difference(&tables.trusted) {
                remove_present(&mut trusted, key, names::TRUSTED_EXES)?;
            }
        }
        self.install_exec(&tables.exec)?;
        sync_hash(
            hash_mut::<InodeKey, ProcessProtection>(&mut self.ebpf, names::PROTECTED_PROCESSES)?,
            names::PROTECTED_PROCESSES,
            &self.installed.processes,
            &tables.processes,
        )?;
        self.installed = tables;
        self.trees_changed()
    }

    /// Invalidates the tree-walk cache after the tree tables changed (and turns it on,
    /// the first time, once the rename watcher is attached). Called after the maps are
    /// written: a walk that read the old epoch may have seen the old tables, and its
    /// entry is stale from here on.
    fn trees_changed(&mut self) -> Result<(), LoadError> {
        if !matches!(self.tree_cache, TreeCache::On) {
            return Ok(());
        }
        let mut epochs: Array<&mut MapData, u64> = array_mut(&mut self.ebpf, names::TREE_EPOCHS)?;
        let next = epochs
            .get(&TREE_EPOCH_POLICY, 0)
            .map_err(map_err(names::TREE_EPOCHS))?
            .wrapping_add(1)
            .max(1);
        epochs
            .set(TREE_EPOCH_POLICY, next, 0)
            .map_err(map_err(names::TREE_EPOCHS))
    }

    /// Puts one entry straight into a hash map, outside the installed tables: the
    /// self-test's canaries. Undo with [`Guard::canary_remove`].
    pub(crate) fn canary_insert<K: aya::Pod, V: aya::Pod>(
        &mut self,
        map: &'static str,
        key: K,
        value: V,
    ) -> Result<(), LoadError> {
        hash_mut::<K, V>(&mut self.ebpf, map)?
            .insert(key, value, 0)
            .map_err(map_err(map))?;
        self.canary_changed(map)
    }

    /// Removes an entry put there with [`Guard::canary_insert`].
    pub(crate) fn canary_remove<K: aya::Pod, V: aya::Pod>(
        &mut self,
        map: &'static str,
        key: K,
    ) -> Result<(), LoadError> {
        let mut hash = hash_mut::<K, V>(&mut self.ebpf, map)?;
        remove_present(&mut hash, &key, map)?;
        self.canary_changed(map)
    }

    fn canary_changed(&mut self, map: &'static str) -> Result<(), LoadError> {
        if map == names::PROTECTED_TREES || map == names::TREE_DEVICES {
            self.trees_changed()?;
        }
        Ok(())
    }

    /// The key the kernel computes for the file at `path`, which this thread opens
    /// read-only while the identity probe is set to it. `None` when the open fails, or
    /// when the kernel reported nothing (the file layer's `file_open` program did not
    /// run).
    pub fn kernel_identity(&mut self, path: &Path) -> Result<Option<InodeKey>, LoadError> {
        let tid = nix::unistd::gettid().as_raw() as u32;
        let mut probe: Array<&mut MapData, IdentityProbe> =
            array_mut(&mut self.ebpf, names::IDENTITY_PROBE)?;
        let set = |probe: &mut Array<&mut MapData, IdentityProbe>, tid| {
            let value = IdentityProbe {
                tid,
                ..IdentityProbe::default()
            };
            probe
                .set(0, value, 0)
                .map_err(map_err(names::IDENTITY_PROBE))
        };
        set(&mut probe, tid)?;
        let opened = std::fs::File::open(path);
        let seen = probe.get(&0, 0).map_err(map_err(names::IDENTITY_PROBE));
        set(&mut probe, 0)?;
        Ok(match (opened, seen?) {
            (Ok(_), p) if p.seen != InodeKey::default() => Some(p.seen),
            _ => None,
        })
    }

    /// Sets one slot of an array map directly (the self-test's rule, class and config).
    pub(crate) fn canary_set<V: aya::Pod>(
        &mut self,
        map: &'static str,
        index: u32,
        value: V,
    ) -> Result<(), LoadError> {
        array_mut::<V>(&mut self.ebpf, map)?
            .set(index, value, 0)
            .map_err(map_err(map))
    }

    /// The exec layer's maps. The class count in the config goes last, so the kernel
    /// never sees a class before its words and objects.
    fn install_exec(&mut self, new: &ExecTables) -> Result<(), LoadError> {
        let old = self.installed.exec.clone();
        sync_hash(
            hash_mut::<WordKey, WordEntry>(&mut self.ebpf, names::COMMAND_WORDS)?,
            names::COMMAND_WORDS,
            &old.words,
            &new.words,
        )?;
        sync_hash(
            hash_mut::<ObjectKey, ObjectEntry>(&mut self.ebpf, names::COMMAND_OBJECTS)?,
            names::COMMAND_OBJECTS,
            &old.objects,
            &new.objects,
        )?;
        sync_hash(
            hash_mut::<u64, BinaryEntry>(&mut self.ebpf, names::COMMAND_BINARIES)?,
            names::COMMAND_BINARIES,
            &old.binaries,
            &new.binaries,
        )?;
        sync_hash(
            hash_mut::<InodeKey, u32>(&mut self.ebpf, names::EXE_CLASSES)?,
            names::EXE_CLASSES,
            &old.exe_classes,
            &new.exe_classes,
        )?;
        sync_hash(
            hash_mut::<InodeKey, u32>(&mut self.ebpf, names::TRUSTED_CALLERS)?,
            names::TRUSTED_CALLERS,
            &old.trusted_callers,
            &new.trusted_callers,
        )?;
        {
            let mut classes: Array<&mut MapData, ClassEntry> =
                array_mut(&mut self.ebpf, names::COMMAND_CLASSES)?;
            for (id, entry) in new.classes.iter().enumerate() {
                classes
                    .set(id as u32, entry, 0)
                    .map_err(map_err(names::COMMAND_CLASSES))?;
            }
        }
        if new.config != old.config {
            let mut config: Array<&mut MapData, CommandConfig> =
                array_mut(&mut self.ebpf, names::COMMAND_CONFIG)?;
            config
                .set(0, new.config, 0)
                .map_err(map_err(names::COMMAND_CONFIG))?;
        }
        Ok(())
    }

    /// Takes the event ring buffer; the caller owns reading it.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self
            .ebpf
            .take_map(names::EVENTS)
            .ok_or(LoadError::MissingMap(names::EVENTS))?;
        RingBuf::try_from(map).map_err(map_err(names::EVENTS))
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

/// Loads and attaches the rename watcher. It runs after `vfs_rename`, a kernel function,
/// so it needs fexit (BPF trampolines), which every kernel with BPF LSM has.
fn attach_rename_watch(ebpf: &mut Ebpf, btf: &Btf) -> Result<FExitLinkId, LoadError> {
    let (name, function) = RENAME_WATCH;
    let program: &mut FExit = program_mut(ebpf, name)?;
    program
        .load(function, btf)
        .and_then(|()| program.attach())
        .map_err(|source| LoadError::Program { hook: name, source })
}

/// Loads the named programs into the kernel, several at a time ([`in_parallel`]).
fn load_programs(ebpf: &mut Ebpf, btf: &Btf, names: &[&'static str]) -> Result<(), LoadError> {
    let mut queue = Vec::with_capacity(names.len());
    for (name, program) in ebpf.programs_mut() {
        if let Some(&name) = names.iter().find(|&&n| n == name) {
            queue.push((name, program));
        }
    }
    if let Some(&missing) = names.iter().find(|&&n| !queue.iter().any(|(q, _)| *q == n)) {
        return Err(LoadError::Program {
            hook: missing,
            source: ProgramError::NotLoaded,
        });
    }
    in_parallel(queue, |(name, program)| load_program(name, program, btf)).map(drop)
}

/// Loads the enforcing programs as fmod_ret programs on the `security_*` functions and
/// attaches them, sharing `ebpf`'s maps. A kernel that refuses them (no BPF trampolines,
/// lockdown) can enforce with neither mechanism, and the error says what would fix it.
fn attach_modify_return(
    ebpf: &Ebpf,
    btf: &Btf,
    hooks: &[&'static str],
    lsms: &io::Result<Vec<String>>,
) -> Result<Vec<(&'static str, OwnedFd)>, LoadError> {
    let unavailable = |e: ModifyReturnError| match e.errno() {
        Some(errno @ (libc::EPERM | libc::EINVAL | KERNEL_ENOTSUPP | libc::EOPNOTSUPP)) => {
            let mut reason = format!(
                "the kernel refused fmod_ret programs ({:?})",
                nix::errno::Errno::from_raw(errno)
            );
            if let Some(why) = lsms.as_ref().ok().and_then(|l| bpf_lsm_inactive(l)) {
                reason.push_str("; ");
                reason.push_str(&why);
            }
            LoadError::EnforcementUnavailable { reason }
        }
        _ => LoadError::ModifyReturn(e),
    };
    let object = modify_return::ModifyReturnObject::new(crate::EBPF_OBJECT, ebpf, btf)
        .map_err(unavailable)?;
    let loaded = in_parallel(hooks.to_vec(), |hook| {
        let function = mechanism::security_function(hook);
        object
            .load(hook, &function, btf)
            .and_then(|prog| {
                modify_return::attach(prog.as_fd()).map_err(|source| ModifyReturnError::Attach {
                    program: hook.to_owned(),
                    function: function.clone(),
                    source,
                })
            })
            .map(|link| (hook, link))
            .inspect(|_| debug!(program = hook, function, "loaded as fmod_ret"))
            .map_err(unavailable)
    })?;
    // Attached in the order asked for, whatever order the threads finished in.
    let mut ordered = loaded;
    ordered.sort_by_key(|(hook, _)| hooks.iter().position(|h| h == hook));
    Ok(ordered)
}

/// Runs `work` on every item, several at a time. Loading is where the kernel verifies a
/// program, which is most of rtguard's start-up; each load is one syscall working on one
/// CPU, and the programs are independent, so they are verified in parallel, one thread
/// per CPU. On the first failure the items not started yet are dropped.
fn in_parallel<T: Send, R: Send>(
    items: Vec<T>,
    work: impl Fn(T) -> Result<R, LoadError> + Sync,
) -> Result<Vec<R>, LoadError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    let queue = Mutex::new(items);
    let next = || queue.lock().unwrap_or_else(PoisonError::into_inner).pop();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some(item) = next() {
                        match work(item) {
                            Ok(r) => done.push(r),
                            Err(e) => {
                                queue.lock().unwrap_or_else(PoisonError::into_inner).clear();
                                return Err(e);
                            }
                        }
                    }
                    Ok(done)
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.join().expect("a program-loading thread panicked")?);
        }
        Ok(all)
    })
}

fn load_program(name: &'static str, program: &mut Program, btf: &Btf) -> Result<(), LoadError> {
    match program {
        // LSM programs are named after their hooks.
        Program::Lsm(lsm) => lsm
            .load(name, btf)
            .map_err(|source| classify_load_error(name, source)),
        Program::TracePoint(tp) => tp
            .load()
            .map_err(|source| LoadError::Program { hook: name, source }),
        _ => Err(LoadError::Program {
            hook: name,
            source: ProgramError::UnexpectedProgramType,
        }),
    }
    .inspect(|()| debug!(program = name, "loaded"))
}

/// A loaded program of the expected type.
fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, LoadError>
where
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(LoadError::Program {
            hook: name,
            source: ProgramError::NotLoaded,
        })?
        .try_into()
        .map_err(|source| LoadError::Program { hook: name, source })
}

fn hash_mut<'a, K: aya::Pod, V: aya::Pod>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<HashMap<&'a mut MapData, K, V>, LoadError> {
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
    HashMap::try_from(map).map_err(map_err(name))
}

fn array_mut<'a, V: aya::Pod>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<Array<&'a mut MapData, V>, LoadError> {
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
    Array::try_from(map).map_err(map_err(name))
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> LoadError {
    move |source| LoadError::Map { map, source }
}

/// Inserts new and changed entries, then removes stale ones.
fn sync_hash<K: aya::Pod + Ord, V: aya::Pod + PartialEq>(
    mut map: HashMap<&mut MapData, K, V>,
    name: &'static str,
    old: &std::collections::BTreeMap<K, V>,
    new: &std::collections::BTreeMap<K, V>,
) -> Result<(), LoadError> {
    for (key, value) in new {
        if old.get(key) != Some(value) {
            map.insert(key, value, 0).map_err(map_err(name))?;
        }
    }
    for key in old.keys() {
        if !new.contains_key(key) {
            remove_present(&mut map, key, name)?;
        }
    }
    Ok(())
}

/// Removes a key; one that is already gone is not an error.
fn remove_present<K: aya::Pod, V: aya::Pod>(
    map: &mut HashMap<&mut MapData, K, V>,
    key: &K,
    name: &'static str,
) -> Result<(), LoadError> {
    match map.remove(key) {
        Ok(()) => Ok(()),
        Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        // The kernel removes entries too (a replaced configuration file's), and aya
        // reports that delete as the syscall's ENOENT.
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(())
        }
        Err(e) => Err(map_err(name)(e)),
    }
}

/// Turns a refused program load into the reason an operator can act on.
fn classify_load_error(hook: &'static str, source: ProgramError) -> LoadError {
    let errno = match &source {
        // A verifier log means the kernel examined the program and rejected it: that is
        // a bug to report as is, not a missing feature.
        ProgramError::LoadError { verifier_log, .. }
            if !verifier_log.to_string().trim().is_empty() =>
        {
            None
        }
        ProgramError::LoadError { io_error, .. } => io_error.raw_os_error(),
        ProgramError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    };
    match (errno, active_lsms()) {
        (_, Ok(lsms)) if bpf_lsm_inactive(&lsms).is_some() => LoadError::EnforcementUnavailable {
            reason: bpf_lsm_inactive(&lsms).unwrap_or_default(),
        },
        (Some(libc::EPERM), _) => LoadError::EnforcementUnavailable {
            reason: "the kernel refused BPF LSM programs (EPERM)".to_owned(),
        },
        (Some(e @ (libc::EINVAL | KERNEL_ENOTSUPP | libc::EOPNOTSUPP)), _) => {
            LoadError::EnforcementUnavailable {
                reason: format!(
                    "the kernel does not support BPF LSM programs on {hook} ({})",
                    io::Error::from_raw_os_error(e)
                ),
            }
        }
        _ => LoadError::Program { hook, source },
    }
}

/// Where the runtime's mount namespace is read: init's, which containerd and dockerd,
/// started by it, share.
const RUNTIME_MNT_NS: &str = "/proc/1/ns/mnt";

/// The inode number of the runtime's mount namespace, or 0 (no mount is refused) when it
/// cannot be read.
fn runtime_mount_namespace() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata(RUNTIME_MNT_NS) {
        Ok(meta) => meta.ino() as u32,
        Err(e) => {
            warn!("mounts over protected objects are not refused: {RUNTIME_MNT_NS}: {e}");
            0
        }
    }
}

/// Why BPF LSM programs cannot enforce on a kernel whose active LSMs are `lsms`, and the
/// boot parameter that would fix it; `None` when `bpf` is among them. The kernel still
/// loads and attaches BPF LSM programs there, but never calls them.
pub fn bpf_lsm_inactive(lsms: &[String]) -> Option<String> {
    if lsms.iter().any(|l| l == "bpf") {
        return None;
    }
    let mut with_bpf = lsms.to_vec();
    with_bpf.push("bpf".to_owned());
    Some(format!(
        "BPF LSM is not active (active LSMs: {}): its programs attach but the kernel never \
         runs them; add `lsm={}` to the kernel command line (GRUB_CMDLINE_LINUX in \
         /etc/default/grub, then update-grub) and reboot",
        lsms.join(","),
        with_bpf.join(",")
    ))
}

/// The kernel's active LSMs, in order (needs securityfs mounted).
pub fn active_lsms() -> io::Result<Vec<String>> {
    Ok(parse_lsm_list(&std::fs::read_to_string(ACTIVE_LSMS)?))
}

fn parse_lsm_list(list: &str) -> Vec<String> {
    list.trim()
        .split(',')
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inactive_bpf_lsm_is_explained_with_the_boot_parameter_that_adds_it() {
        let ubuntu: Vec<String> = "landlock,lockdown,yama,integrity,apparmor"
            .split(',')
            .map(str::to_owned)
            .collect();
        let why = bpf_lsm_inactive(&ubuntu).unwrap();
        assert!(
            why.starts_with(
                "BPF LSM is not active (active LSMs: landlock,lockdown,yama,integrity,apparmor)"
            ),
            "{why}"
        );
        assert!(
            why.contains("`lsm=landlock,lockdown,yama,integrity,apparmor,bpf`"),
            "{why}"
        );
        let debian = parse_lsm_list("lockdown,capability,landlock,yama,apparmor,tomoyo,bpf\n");
        assert_eq!(bpf_lsm_inactive(&debian), None);
    }

    #[test]
    fn lsm_list_is_split_into_whole_names() {
        assert_eq!(
            parse_lsm_list("lockdown,capability,bpf\n"),
            ["lockdown", "capability", "bpf"]
        );
        assert!(!parse_lsm_list("capability,bpffs").contains(&"bpf".to_owned()));
        assert!(parse_lsm_list("").is_empty());
    }

    #[test]
    fn both_hook_sets_cover_open_for_write() {
        for set in [FileHooks::Path, FileHooks::Inode] {
            assert!(set.hooks().contains(&"file_open"));
        }
    }
}

//! Loading and attaching: the programs are verified against this kernel's BTF (in
//! parallel), attached as BPF LSM programs or as fmod_ret programs on the `security_*`
//! functions, and a refusal is turned into the reason an operator can act on.

use std::{
    cell::OnceCell,
    io,
    os::fd::{AsFd, OwnedFd},
    path::Path,
    sync::{Mutex, PoisonError},
};

use aya::{
    programs::{fexit::FExitLinkId, FExit, Lsm, Program, ProgramError},
    Btf, Ebpf, EbpfLoader,
};
use guard_common::{names, GuardConfig, KernelOffsets};
use tracing::{debug, info, warn};

use crate::tables::KernelTables;

use super::kernel_btf::KernelBtf;

use super::{
    active_lsms, bpf_lsm_inactive, fs_layout, has_hook, lsm_hooks, mechanism, modify_return,
    offsets_from, pins, FileHooks, Generation, Guard, HookChoice, LoadError, Mechanism, Mode,
    ModifyReturnError, TreeCache, KERNEL_ENOTSUPP, OPTIONAL_HOOKS, RENAME_WATCH, UNUSED_RING_BYTES,
};

impl Guard {
    /// One attempt with `mechanism`. `kernel` and `loader` are shared with a second
    /// attempt; the loader borrows the attempt's globals, so they live in `globals`, one
    /// per attempt. `lap` ends each step ("object", "verify", "attach") as it completes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn load_with<'a>(
        mode: Mode,
        choice: HookChoice,
        mechanism: Mechanism,
        mechanism_why: mechanism::Why,
        lsms: &io::Result<Vec<String>>,
        generation: Option<&Generation>,
        kernel: &KernelBtf,
        loader: &mut EbpfLoader<'a>,
        globals: &'a OnceCell<Globals>,
        lap: &mut dyn FnMut(&'static str),
    ) -> Result<Self, LoadError> {
        let offsets = offsets_from(&kernel.types, mechanism)?;
        debug!(?offsets, "resolved kernel struct offsets from BTF");
        // The module's BTF is split BTF on top of vmlinux's.
        let btrfs = fs_layout::btrfs_layout(kernel.types.btf(), Path::new(fs_layout::BTRFS_BTF))?;
        let path_hooks = has_hook(&kernel.types, mechanism, "path_unlink");
        let missing: Vec<&'static str> = OPTIONAL_HOOKS
            .iter()
            .copied()
            .filter(|hook| !has_hook(&kernel.types, mechanism, hook))
            .collect();
        let file_hooks = match choice {
            HookChoice::Auto if path_hooks => FileHooks::Path,
            HookChoice::Auto => FileHooks::Inode,
            HookChoice::Only(FileHooks::Path) if !path_hooks => return Err(LoadError::NoPathHooks),
            HookChoice::Only(hooks) => hooks,
        };

        let config = GuardConfig {
            enforce: u32::from(mode == Mode::Enforce),
            runtime_mnt_ns: runtime_mount_namespace(),
        };
        let Globals { offsets, config } = globals.get_or_init(|| Globals { offsets, config });
        loader
            .override_global(names::OFFSETS, offsets, true)
            .override_global(names::GUARD_CONFIG, config, true)
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
        lap("object");

        let btf = &kernel.aya;
        let enforcing: Vec<&'static str> = lsm_hooks(file_hooks)
            .filter(|hook| !missing.contains(hook))
            .collect();
        let mut attached = Vec::new();
        let mut lsm_links = Vec::new();
        let mut modify_return_links = Vec::new();
        // The rename watcher is optional: without it the tree-walk cache is off.
        let rename_watch_loaded =
            (offsets.renamedata_old_dentry != 0).then(|| load_rename_watch(&mut ebpf, btf));
        let sysctl_loaded = super::sysctl::load(&mut ebpf);
        match mechanism {
            Mechanism::BpfLsm => {
                load_programs(&mut ebpf, btf, &enforcing)?;
                lap("verify");
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
                let loaded = load_modify_return(&ebpf, btf, &enforcing, lsms)?;
                lap("verify");
                for (hook, link) in attach_modify_return(loaded, &enforcing, lsms)? {
                    debug!(hook, "attached fmod_ret program");
                    modify_return_links.push((hook, link));
                    attached.push(hook);
                }
            }
        }
        let (rename_watch, tree_cache) = match rename_watch_loaded {
            None => {
                let reason = "the kernel's vfs_rename takes no struct renamedata".to_owned();
                (None, TreeCache::Off { reason })
            }
            Some(loaded) => match loaded.and_then(|()| attach_rename_watch(&mut ebpf)) {
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
            },
        };
        let sysctl_guard = super::sysctl::attach(&mut ebpf, sysctl_loaded);
        lap("attach");
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
            rename_watch,
            tree_cache,
            sysctl_guard,
            pinned: Vec::new(),
            installed: KernelTables::default(),
            protected_cgroups: Default::default(),
            netfilter: Default::default(),
        })
    }
}

/// The read-only globals of one load attempt.
pub(super) struct Globals {
    offsets: KernelOffsets,
    config: GuardConfig,
}

/// Loads the rename watcher. It runs after `vfs_rename`, a kernel function, so it needs
/// fexit (BPF trampolines), which every kernel with BPF LSM has.
fn load_rename_watch(ebpf: &mut Ebpf, btf: &Btf) -> Result<(), LoadError> {
    let (name, function) = RENAME_WATCH;
    let program: &mut FExit = program_mut(ebpf, name)?;
    program
        .load(function, btf)
        .map_err(|source| LoadError::Program { hook: name, source })
}

/// Attaches the loaded rename watcher.
fn attach_rename_watch(ebpf: &mut Ebpf) -> Result<FExitLinkId, LoadError> {
    let name = RENAME_WATCH.0;
    let program: &mut FExit = program_mut(ebpf, name)?;
    program
        .attach()
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

/// Why fmod_ret is refused, when the kernel says so: a kernel that refuses these
/// programs (no BPF trampolines, lockdown) can enforce with neither mechanism, and the
/// error says what would fix it.
fn modify_return_unavailable(lsms: &io::Result<Vec<String>>, e: ModifyReturnError) -> LoadError {
    match e.errno() {
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
    }
}

/// Loads the enforcing programs as fmod_ret programs on the `security_*` functions,
/// sharing `ebpf`'s maps, several at a time.
fn load_modify_return(
    ebpf: &Ebpf,
    btf: &Btf,
    hooks: &[&'static str],
    lsms: &io::Result<Vec<String>>,
) -> Result<Vec<(&'static str, String, OwnedFd)>, LoadError> {
    let unavailable = |e| modify_return_unavailable(lsms, e);
    let object = modify_return::ModifyReturnObject::new(crate::EBPF_OBJECT, ebpf, btf)
        .map_err(unavailable)?;
    in_parallel(hooks.to_vec(), |hook| {
        let function = mechanism::security_function(hook);
        object
            .load(hook, &function, btf)
            .map(|prog| (hook, function, prog))
            .map_err(unavailable)
    })
}

/// Attaches the loaded fmod_ret programs, in the order [`load_modify_return`] was asked
/// for, whatever order its threads finished in.
fn attach_modify_return(
    mut loaded: Vec<(&'static str, String, OwnedFd)>,
    hooks: &[&'static str],
    lsms: &io::Result<Vec<String>>,
) -> Result<Vec<(&'static str, OwnedFd)>, LoadError> {
    loaded.sort_by_key(|(hook, ..)| hooks.iter().position(|h| h == hook));
    loaded
        .into_iter()
        .map(|(hook, function, prog)| {
            modify_return::attach(prog.as_fd())
                .map(|link| (hook, link))
                .inspect(|_| debug!(program = hook, function, "loaded as fmod_ret"))
                .map_err(|source| {
                    modify_return_unavailable(
                        lsms,
                        ModifyReturnError::Attach {
                            program: hook.to_owned(),
                            function,
                            source,
                        },
                    )
                })
        })
        .collect()
}

/// Runs `work` on every item, several at a time. Loading is where the kernel verifies a
/// program, which is most of rtguard's start-up; each load is one syscall working on one
/// CPU, and the programs are independent, so they are verified in parallel, one thread
/// per CPU. On the first failure the items not started yet are dropped.
pub(super) fn in_parallel<T: Send, R: Send>(
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
        _ => Err(LoadError::Program {
            hook: name,
            source: ProgramError::UnexpectedProgramType,
        }),
    }
    .inspect(|()| debug!(program = name, "loaded"))
}

/// A loaded program of the expected type.
pub(super) fn program_mut<'a, T>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut T, LoadError>
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
        // Not for a verifier log (no errno here): a program the verifier rejected is
        // rejected whatever the LSM list says.
        (Some(_), Ok(lsms)) if bpf_lsm_inactive(&lsms).is_some() => {
            LoadError::EnforcementUnavailable {
                reason: bpf_lsm_inactive(&lsms).unwrap_or_default(),
            }
        }
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

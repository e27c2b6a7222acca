//! File layer: destructive operations on protected objects, their ancestors and trees.
//!
//! Two sets of hooks, chosen by the loader:
//! - `path_*` hooks (CONFIG_SECURITY_PATH) see the operation with its mount, before the
//!   filesystem; they are the default.
//! - `inode_*` hooks are the fallback for kernels built without CONFIG_SECURITY_PATH.
//!   `inode_setattr` covers chmod, chown and truncate there.
//!
//! `file_open` catches opens for writing (and O_TRUNC) in both sets, and `sb_mount` and
//! `move_mount` mounts over protected objects in the runtime's mount namespace.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes, generated::bpf_loop},
    macros::lsm,
    maps::HashMap,
    programs::LsmContext,
};
use guard_common::{
    event::{EventKind, EVENT_NAME_LEN, EVENT_PATH_COMPONENTS, EVENT_PATH_TRUNCATED},
    file::{
        ExcludedChildKey, UpgradeKey, FILE_EDITABLE, FILE_PACKAGE_RECORD, FILE_REMOVABLE,
        FILE_UPGRADABLE, MAX_TREE_DEPTH, MAX_TRUST_ANCESTRY, NO_PACKAGE, OPS_EDIT,
        TRUST_PACKAGE_MANAGER,
    },
    process::OP_OOM_ADJUST,
    Decision, FileEvent, FileOp, FileProtection, InodeKey, KernelOffsets, TrustKey,
};

use crate::{
    chain::{chained, chained_fast, restated, EPERM},
    fast_path::{name_unprotected, rmdir_cannot_remove, surely_unprotected},
    kernel::{
        arg_scalar, current_cmdline, current_task, dentry_is_dir, dentry_is_fs_root, dentry_key,
        dentry_name, dentry_parent, dentry_sb_dev, dentry_sb_magic, file_dentry, file_flags,
        file_inode, file_mode, fill_header, iattr_valid, inode_key, loop_stops, offset,
        path_dentry, proc_inode_task, read_ptr, resolved_offsets, stamp_kept, stamp_take, task_exe,
        task_mnt_ns, task_parent, zero_words, zeroed_bytes, BtfPtr, KernelPtr,
    },
    maps::{
        count_dropped_event, is_runtime_mnt_ns, rule_enforces, EVENTS, EVENT_SCRATCH,
        EXCLUDED_CHILDREN, EXCLUDED_CHILD_KEY, IDENTITY_PROBE, NAME_DIRECTORIES, PROTECTED_INODES,
        PROTECTED_NAMES, PROTECTED_TREES, TREE_DEVICES, TRUSTED_EXES, UPGRADES,
    },
    process::{rtguard_process_decide, PROTECTED_CGROUPS},
    tree_cache::{self, tree_root, Probe, TreeRoot},
};

/// `FMODE_WRITE` in `file->f_mode` (include/linux/fs.h; stable since 2.6).
const FMODE_WRITE: u32 = 0x2;
/// `O_TRUNC` in `file->f_flags` (x86-64 and the generic ABI).
const O_TRUNC: u32 = 0o1000;
/// `ATTR_MODE | ATTR_UID | ATTR_GID | ATTR_SIZE` in `iattr->ia_valid`: the changes that
/// break a binary. Timestamps (`touch`) stay allowed.
const ATTR_BREAKING: u32 = 0x1 | 0x2 | 0x4 | 0x8;

// ---- path hooks -------------------------------------------------------------------------

/// `security_path_unlink(const struct path *dir, struct dentry *dentry)`
#[lsm(hook = "path_unlink")]
pub fn path_unlink(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        2,
        || surely_unprotected(BtfPtr::arg(&ctx, 1), FileOp::Unlink),
        |off| decide(off, FileOp::Unlink, arg_scalar(&ctx, 1)),
    )
}

/// `security_path_rmdir(const struct path *dir, struct dentry *dentry)`
#[lsm(hook = "path_rmdir")]
pub fn path_rmdir(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        2,
        || {
            let dentry = BtfPtr::arg(&ctx, 1);
            rmdir_cannot_remove(dentry) || surely_unprotected(dentry, FileOp::Rmdir)
        },
        |off| decide(off, FileOp::Rmdir, arg_scalar(&ctx, 1)),
    )
}

/// `security_path_rename(old_dir, old_dentry, new_dir, new_dentry, flags)`: both the
/// object moved away and the one renamed over (a negative dentry when there is none).
#[lsm(hook = "path_rename")]
pub fn path_rename(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        5,
        || rename_unprotected(&ctx),
        |_| {
            if rtguard_name_decide(arg_scalar(&ctx, 3) as u64) != 0 {
                return EPERM;
            }
            let flags = arg_scalar(&ctx, 4) as u64 & RENAME_EXCHANGE;
            restated(rtguard_rename_decide(
                arg_scalar(&ctx, 0) as u64,
                arg_scalar(&ctx, 1) as u64,
                arg_scalar(&ctx, 2) as u64,
                arg_scalar(&ctx, 3) as u64,
                flags | RENAME_DIRS_ARE_PATHS,
            ))
        },
    )
}

/// The fast path of `path_rename`: the target's name, the object moved away, and the one
/// renamed over, each as `rtguard_rename_decide` judges it.
#[inline(always)]
fn rename_unprotected(ctx: &LsmContext) -> bool {
    let old_dir = path_btf_dentry(BtfPtr::arg(ctx, 0));
    let new_dir = path_btf_dentry(BtfPtr::arg(ctx, 2));
    let exchange = ctx.arg::<u64>(4) & RENAME_EXCHANGE != 0;
    let over = if !old_dir.is_null() && old_dir == new_dir && !exchange {
        FileOp::Replace
    } else {
        FileOp::Rename
    };
    let new = BtfPtr::arg(ctx, 3);
    name_unprotected(new)
        && surely_unprotected(BtfPtr::arg(ctx, 1), FileOp::Rename)
        && surely_unprotected(new, over)
}

/// `path->dentry` by a direct load.
#[inline(always)]
fn path_btf_dentry(path: BtfPtr) -> BtfPtr {
    if path.is_null() {
        return path;
    }
    path.ptr(offset!(path_dentry))
}

/// `security_path_truncate(const struct path *path)`
#[lsm(hook = "path_truncate")]
pub fn path_truncate(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        1,
        || surely_unprotected(path_btf_dentry(BtfPtr::arg(&ctx, 0)), FileOp::Truncate),
        |off| decide_path(off, FileOp::Truncate, arg_scalar(&ctx, 0)),
    )
}

/// `security_path_chmod(const struct path *path, umode_t mode)`
#[lsm(hook = "path_chmod")]
pub fn path_chmod(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        2,
        || surely_unprotected(path_btf_dentry(BtfPtr::arg(&ctx, 0)), FileOp::Chmod),
        |off| decide_path(off, FileOp::Chmod, arg_scalar(&ctx, 0)),
    )
}

/// `security_path_chown(const struct path *path, kuid_t uid, kgid_t gid)`
#[lsm(hook = "path_chown")]
pub fn path_chown(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        3,
        || surely_unprotected(path_btf_dentry(BtfPtr::arg(&ctx, 0)), FileOp::Chown),
        |off| decide_path(off, FileOp::Chown, arg_scalar(&ctx, 0)),
    )
}

/// `security_path_symlink(const struct path *dir, struct dentry *dentry, const char *old_name)`
#[lsm(hook = "path_symlink")]
pub fn path_symlink(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        3,
        || name_unprotected(BtfPtr::arg(&ctx, 1)),
        |_| restated(rtguard_name_decide(arg_scalar(&ctx, 1) as u64)),
    )
}

/// `security_path_mknod(const struct path *dir, struct dentry *dentry, umode_t mode,
/// unsigned int dev)`: also what `open(O_CREAT)` calls for a new file.
#[lsm(hook = "path_mknod")]
pub fn path_mknod(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        4,
        || name_unprotected(BtfPtr::arg(&ctx, 1)),
        |_| restated(rtguard_name_decide(arg_scalar(&ctx, 1) as u64)),
    )
}

/// `security_path_mkdir(const struct path *dir, struct dentry *dentry, umode_t mode)`
#[lsm(hook = "path_mkdir")]
pub fn path_mkdir(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        3,
        || name_unprotected(BtfPtr::arg(&ctx, 1)),
        |_| restated(rtguard_name_decide(arg_scalar(&ctx, 1) as u64)),
    )
}

/// `security_path_link(struct dentry *old_dentry, const struct path *new_dir,
/// struct dentry *new_dentry)`
#[lsm(hook = "path_link")]
pub fn path_link(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        3,
        || name_unprotected(BtfPtr::arg(&ctx, 2)),
        |_| restated(rtguard_name_decide(arg_scalar(&ctx, 2) as u64)),
    )
}

// ---- inode hooks (fallback without CONFIG_SECURITY_PATH) ---------------------------------

/// `security_inode_create(struct inode *dir, struct dentry *dentry, umode_t mode)`
#[lsm(hook = "inode_create")]
pub fn inode_create(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        3,
        || name_unprotected(BtfPtr::arg(&ctx, 1)),
        |_| restated(rtguard_name_decide(arg_scalar(&ctx, 1) as u64)),
    )
}

/// `security_inode_symlink(struct inode *dir, struct dentry *dentry, const char *old_name)`
#[lsm(hook = "inode_symlink")]
pub fn inode_symlink(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        3,
        || name_unprotected(BtfPtr::arg(&ctx, 1)),
        |_| restated(rtguard_name_decide(arg_scalar(&ctx, 1) as u64)),
    )
}

/// `security_inode_mkdir(struct inode *dir, struct dentry *dentry, umode_t mode)`
#[lsm(hook = "inode_mkdir")]
pub fn inode_mkdir(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        3,
        || name_unprotected(BtfPtr::arg(&ctx, 1)),
        |_| restated(rtguard_name_decide(arg_scalar(&ctx, 1) as u64)),
    )
}

/// `security_inode_mknod(struct inode *dir, struct dentry *dentry, umode_t mode, dev_t dev)`
#[lsm(hook = "inode_mknod")]
pub fn inode_mknod(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        4,
        || name_unprotected(BtfPtr::arg(&ctx, 1)),
        |_| restated(rtguard_name_decide(arg_scalar(&ctx, 1) as u64)),
    )
}

/// `security_inode_link(struct dentry *old_dentry, struct inode *dir,
/// struct dentry *new_dentry)`
#[lsm(hook = "inode_link")]
pub fn inode_link(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        3,
        || name_unprotected(BtfPtr::arg(&ctx, 2)),
        |_| restated(rtguard_name_decide(arg_scalar(&ctx, 2) as u64)),
    )
}

/// `security_inode_unlink(struct inode *dir, struct dentry *dentry)`
#[lsm(hook = "inode_unlink")]
pub fn inode_unlink(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        2,
        || surely_unprotected(BtfPtr::arg(&ctx, 1), FileOp::Unlink),
        |off| decide(off, FileOp::Unlink, arg_scalar(&ctx, 1)),
    )
}

/// `security_inode_rmdir(struct inode *dir, struct dentry *dentry)`
#[lsm(hook = "inode_rmdir")]
pub fn inode_rmdir(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        2,
        || {
            let dentry = BtfPtr::arg(&ctx, 1);
            rmdir_cannot_remove(dentry) || surely_unprotected(dentry, FileOp::Rmdir)
        },
        |off| decide(off, FileOp::Rmdir, arg_scalar(&ctx, 1)),
    )
}

/// `inode_rename(old_dir, old_dentry, new_dir, new_dentry)`, the LSM hook: for
/// `RENAME_EXCHANGE` the kernel calls it twice, the second time with the sides swapped,
/// so each object is also seen moving away. Under fmod_ret the program runs once at
/// `security_inode_rename(…, flags)` and passes the exchange flag on instead.
#[lsm(hook = "inode_rename")]
pub fn inode_rename(ctx: LsmContext) -> i32 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    // Context slots must be read at constant indices, hence one branch per arity.
    if off.inode_rename_args == 5 {
        chained(&ctx, 5, |_| {
            inode_rename_decide(&ctx, arg_scalar(&ctx, 4) as u64 & RENAME_EXCHANGE)
        })
    } else {
        chained(&ctx, 4, |_| inode_rename_decide(&ctx, 0))
    }
}

#[inline(always)]
fn inode_rename_decide(ctx: &LsmContext, flags: u64) -> i32 {
    if rtguard_name_decide(arg_scalar(ctx, 3) as u64) != 0 {
        return EPERM;
    }
    restated(rtguard_rename_decide(
        arg_scalar(ctx, 0) as u64,
        arg_scalar(ctx, 1) as u64,
        arg_scalar(ctx, 2) as u64,
        arg_scalar(ctx, 3) as u64,
        flags,
    ))
}

/// `security_inode_setattr([struct mnt_idmap *,] struct dentry *, struct iattr *)`: the
/// idmap parameter arrived in 6.3, so the argument positions come from the loader.
#[lsm(hook = "inode_setattr")]
pub fn inode_setattr(ctx: LsmContext) -> i32 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    // Context slots must be read at constant indices, hence one branch per arity.
    if off.inode_setattr_args == 3 {
        chained(&ctx, 3, |off| {
            decide_setattr(off, arg_scalar(&ctx, 1), arg_scalar(&ctx, 2))
        })
    } else {
        chained(&ctx, 2, |off| {
            decide_setattr(off, arg_scalar(&ctx, 0), arg_scalar(&ctx, 1))
        })
    }
}

// ---- attributes (both sets) -----------------------------------------------------------------

/// The prefix of both POSIX ACL attributes, `system.posix_acl_access` and
/// `system.posix_acl_default`.
const POSIX_ACL_PREFIX: &[u8] = b"system.posix_acl_";
const _: () = assert!(POSIX_ACL_PREFIX.len() < 24);

/// `security_inode_setxattr([struct mnt_idmap *,] struct dentry *, const char *name,
/// const void *value, size_t size, int flags)`: before Linux 6.2 ACLs are written as
/// extended attributes through here. Other attributes pass (capabilities, SELinux
/// labels set by package managers).
#[lsm(hook = "inode_setxattr")]
pub fn inode_setxattr(ctx: LsmContext) -> i32 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    // Context slots must be read at constant indices, hence one branch per arity.
    if off.inode_setxattr_args == 6 {
        chained(&ctx, 6, |off| {
            decide_acl(off, arg_scalar(&ctx, 1), arg_scalar(&ctx, 2))
        })
    } else {
        chained(&ctx, 5, |off| {
            decide_acl(off, arg_scalar(&ctx, 0), arg_scalar(&ctx, 1))
        })
    }
}

#[inline(always)]
fn decide_acl(off: &KernelOffsets, dentry: KernelPtr, name: KernelPtr) -> i32 {
    // Room for the prefix and more (a name longer than the buffer is cut, which keeps its
    // start), in whole words.
    let mut slot = core::mem::MaybeUninit::<[u64; 3]>::uninit();
    let prefix: &mut [u8; 24] = zeroed_bytes(&mut slot);
    if unsafe { bpf_probe_read_kernel_str_bytes(name as *const u8, prefix) }.is_err() {
        return 0;
    }
    if &prefix[..POSIX_ACL_PREFIX.len()] == POSIX_ACL_PREFIX {
        decide(off, FileOp::SetAcl, dentry)
    } else {
        0
    }
}

/// `security_inode_set_acl(struct mnt_idmap *, struct dentry *, const char *acl_name,
/// struct posix_acl *)`: Linux 6.2 and later write ACLs through here, not through
/// `inode_setxattr`. The loader attaches it where the kernel has it.
#[lsm(hook = "inode_set_acl")]
pub fn inode_set_acl(ctx: LsmContext) -> i32 {
    chained(&ctx, 4, |off| {
        decide(off, FileOp::SetAcl, arg_scalar(&ctx, 1))
    })
}

/// `FS_IOC_SETFLAGS` (`_IOW('f', 2, long)`), what `chattr` uses.
const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
/// `FS_IOC32_SETFLAGS` (`_IOW('f', 2, int)`).
const FS_IOC32_SETFLAGS: u32 = 0x4004_6602;
/// `FS_IOC_FSSETXATTR` (`_IOW('X', 32, struct fsxattr)`), which sets the same flags
/// (`xfs_io -c 'chattr +i'`).
const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;

/// `security_file_ioctl(struct file *file, unsigned int cmd, unsigned long arg)`: inode
/// flag changes. Every other ioctl passes after one comparison.
#[lsm(hook = "file_ioctl")]
pub fn file_ioctl(ctx: LsmContext) -> i32 {
    chained(&ctx, 3, |off| {
        let cmd = arg_scalar(&ctx, 1) as u64 as u32;
        if cmd != FS_IOC_SETFLAGS && cmd != FS_IOC32_SETFLAGS && cmd != FS_IOC_FSSETXATTR {
            return 0;
        }
        match file_dentry(off, arg_scalar(&ctx, 0)) {
            Some(dentry) => decide(off, FileOp::SetFlags, dentry),
            None => 0,
        }
    })
}

/// `security_inode_file_setattr(struct dentry *, struct file_kattr *)`: Linux 6.17 and
/// later set inode flags through `vfs_fileattr_set`, which the `file_setattr(2)` system
/// call reaches without an ioctl. The loader attaches it where the kernel has it.
#[lsm(hook = "inode_file_setattr")]
pub fn inode_file_setattr(ctx: LsmContext) -> i32 {
    chained(&ctx, 2, |off| {
        decide(off, FileOp::SetFlags, arg_scalar(&ctx, 0))
    })
}

// ---- both sets -----------------------------------------------------------------------------

/// `security_file_open(struct file *file)`: writes and O_TRUNC.
#[lsm(hook = "file_open")]
pub fn file_open(ctx: LsmContext) -> i32 {
    chained_fast(
        &ctx,
        1,
        || open_unprotected(&ctx),
        |off| {
            let file = arg_scalar(&ctx, 0);
            report_identity(off, file);
            let writes = file_mode(off, file).is_some_and(|m| m & FMODE_WRITE != 0)
                || file_flags(off, file).is_some_and(|f| f & O_TRUNC != 0);
            if !writes {
                return 0;
            }
            let Some(dentry) = file_dentry(off, file) else {
                return 0;
            };
            let target = rtguard_oom_adjust_target(file as u64, dentry as u64);
            if target != 0 {
                return restated(rtguard_process_decide(target, OP_OOM_ADJUST));
            }
            // The global function answers in codes, not errnos: the verifier knows nothing
            // of what it returns, and an LSM program must provably return 0 or an errno.
            match rtguard_cgroup_control(dentry as u64) {
                CGROUP_REFUSED => EPERM,
                CGROUP_ALLOWED => 0,
                _ => decide(off, FileOp::OpenWrite, dentry),
            }
        },
    )
}

/// The fast path of `file_open`: a read, or a write to nothing protected. The identity
/// probe's opens take the full path, which reports them.
#[inline(always)]
fn open_unprotected(ctx: &LsmContext) -> bool {
    if identity_probe_wanted() {
        return false;
    }
    let file = BtfPtr::arg(ctx, 0);
    if file.is_null() {
        return false;
    }
    let writes = file.load::<u32>(offset!(file_f_mode)) & FMODE_WRITE != 0
        || file.load::<u32>(offset!(file_f_flags)) & O_TRUNC != 0;
    if !writes {
        return true;
    }
    let dentry = file.ptr(offset!(file_f_path) + offset!(path_dentry));
    // A procfs or cgroup file may control a process: the full path looks.
    let sb = dentry.ptr(offset!(dentry_d_sb));
    if sb.is_null() {
        return false;
    }
    let magic = sb.load::<u64>(offset!(super_block_s_magic));
    magic != PROC_SUPER_MAGIC
        && magic != CGROUP2_SUPER_MAGIC
        && surely_unprotected(dentry, FileOp::OpenWrite)
}

/// `PROC_SUPER_MAGIC` and `CGROUP2_SUPER_MAGIC` (include/uapi/linux/magic.h).
const PROC_SUPER_MAGIC: u64 = 0x9fa0;
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

/// The process whose `/proc/PID/oom_score_adj` (or `oom_adj`, the older scale of the same
/// value) `file` is, or 0 for any other file. At 1000 the OOM killer takes the process
/// first: the process layer judges the write. A BPF function of its own, so its frame
/// is not on `file_open`'s stack when the process decision runs.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_oom_adjust_target(file: u64, dentry: u64) -> u64 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    let (file, dentry) = (file as KernelPtr, dentry as KernelPtr);
    if dentry_sb_magic(off, dentry) != Some(PROC_SUPER_MAGIC) {
        return 0;
    }
    let mut slot = core::mem::MaybeUninit::<[u64; 2]>::uninit();
    let name: &mut [u8; 16] = zeroed_bytes(&mut slot);
    let Some(name_ptr) = dentry_name(off, dentry) else {
        return 0;
    };
    match unsafe { bpf_probe_read_kernel_str_bytes(name_ptr, name) } {
        Ok(name) if name == b"oom_score_adj" || name == b"oom_adj" => {}
        _ => return 0,
    }
    file_inode(off, file)
        .and_then(|inode| proc_inode_task(off, inode))
        .map_or(0, |task| task as u64)
}

/// [`rtguard_cgroup_control`]'s answers: refused, allowed (pid 1, or audit mode), or a file
/// that is neither `cgroup.kill` nor `cgroup.freeze` of a cgroup holding a protected
/// process.
const CGROUP_REFUSED: u32 = 1;
const CGROUP_ALLOWED: u32 = 0;
const NOT_CGROUP_CONTROL: u32 = 2;

/// `cgroup.kill` (which kills everything in the cgroup and below it) or `cgroup.freeze`
/// (which stops it) of a cgroup that holds a protected process, opened for writing:
/// refused except from pid 1, which kills and freezes units' cgroups itself. The daemon
/// keeps `PROTECTED_CGROUPS` to a census of the running processes.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_cgroup_control(dentry: u64) -> u32 {
    let Some(off) = resolved_offsets() else {
        return NOT_CGROUP_CONTROL;
    };
    let dentry = dentry as KernelPtr;
    if dentry_sb_magic(off, dentry) != Some(CGROUP2_SUPER_MAGIC) {
        return NOT_CGROUP_CONTROL;
    }
    let mut slot = core::mem::MaybeUninit::<[u64; 2]>::uninit();
    let name: &mut [u8; 16] = zeroed_bytes(&mut slot);
    let Some(name_ptr) = dentry_name(off, dentry) else {
        return NOT_CGROUP_CONTROL;
    };
    match unsafe { bpf_probe_read_kernel_str_bytes(name_ptr, name) } {
        Ok(name) if name == b"cgroup.kill" || name == b"cgroup.freeze" => {}
        _ => return NOT_CGROUP_CONTROL,
    }
    let Some(parent) = dentry_parent(off, dentry) else {
        return NOT_CGROUP_CONTROL;
    };
    let Some(cgroup) = dentry_key(off, parent) else {
        return NOT_CGROUP_CONTROL;
    };
    let Some(&rule_id) = (unsafe { PROTECTED_CGROUPS.get(cgroup) }) else {
        return NOT_CGROUP_CONTROL;
    };
    if (bpf_get_current_pid_tgid() >> 32) as u32 == 1 {
        return CGROUP_ALLOWED;
    }
    let Some(target) = dentry_key(off, dentry) else {
        return NOT_CGROUP_CONTROL;
    };
    let m = Match {
        protection: FileProtection {
            rule_id,
            ops: FileOp::OpenWrite.bit(),
            flags: 0,
            package: NO_PACKAGE,
        },
        anchor: cgroup,
    };
    if rule_enforces(rule_id) {
        report(FileOp::OpenWrite, Decision::Blocked, target, &m, dentry);
        CGROUP_REFUSED
    } else {
        report(FileOp::OpenWrite, Decision::WouldBlock, target, &m, dentry);
        CGROUP_ALLOWED
    }
}

// ---- mounts (both sets) ----------------------------------------------------------------------

/// `MS_REMOUNT` in `sb_mount`'s flags: new options for a mount that is there already.
const MS_REMOUNT: u64 = 32;
/// `MS_UNBINDABLE | MS_PRIVATE | MS_SLAVE | MS_SHARED`: a propagation change only.
const MS_PROPAGATION: u64 = (1 << 17) | (1 << 18) | (1 << 19) | (1 << 20);

/// `security_sb_mount(dev_name, path, type, flags, data)`: mount(2) putting a new
/// filesystem, a bind or a moved mount on `path`. Remounts and propagation changes put
/// nothing new there.
#[lsm(hook = "sb_mount")]
pub fn sb_mount(ctx: LsmContext) -> i32 {
    chained(&ctx, 5, |off| {
        if arg_scalar(&ctx, 3) as u64 & (MS_REMOUNT | MS_PROPAGATION) != 0 {
            return 0;
        }
        decide_mount(off, arg_scalar(&ctx, 1))
    })
}

/// `security_move_mount(from_path, to_path)`: the new mount API's attach (`fsmount` or
/// `open_tree` then `move_mount`, as util-linux 2.39 and later mount).
#[lsm(hook = "move_mount")]
pub fn move_mount(ctx: LsmContext) -> i32 {
    chained(&ctx, 2, |off| decide_mount(off, arg_scalar(&ctx, 1)))
}

/// `BPF_FS_MAGIC` (include/uapi/linux/magic.h).
const BPF_FS_MAGIC: u64 = 0xcafe4a11;

/// `security_sb_umount(struct vfsmount *mnt, int flags)`: unmounting the BPF filesystem
/// drops what is pinned in it (`umount -l /sys/fs/bpf`), and with the daemon gone the
/// pinned links are all that keeps the programs attached. Refused in the runtime's mount
/// namespace where the mount's root is protected (the pins' ancestor), on bpffs only:
/// other unmounts change what a path shows, not what the kernel enforces, and the daemon
/// resolves the policy again after them (`op: mounts-changed`).
#[lsm(hook = "sb_umount")]
pub fn sb_umount(ctx: LsmContext) -> i32 {
    chained(&ctx, 2, |off| {
        let Some(root) = read_ptr(arg_scalar(&ctx, 0), off.vfsmount_mnt_root) else {
            return 0;
        };
        if dentry_sb_magic(off, root) != Some(BPF_FS_MAGIC) {
            return 0;
        }
        match task_mnt_ns(off, current_task()) {
            Some(ns) if is_runtime_mnt_ns(ns) => decide(off, FileOp::Unmount, root),
            _ => 0,
        }
    })
}

/// A mount onto `path`, refused where it would cover a protected object, tree root or
/// one of their ancestors in the runtime's mount namespace. Mounts below a tree root
/// (the runtime's snapshots and task rootfs) are not looked for: the file decision does
/// not walk up for [`FileOp::Mount`].
#[inline(always)]
fn decide_mount(off: &KernelOffsets, path: KernelPtr) -> i32 {
    match task_mnt_ns(off, current_task()) {
        Some(ns) if is_runtime_mnt_ns(ns) => decide_path(off, FileOp::Mount, path),
        _ => 0,
    }
}

/// The identity probe: an open by the probing daemon thread reports the key this side
/// computes for the file, so userspace can compare it with the one it resolved.
#[inline(always)]
fn report_identity(off: &KernelOffsets, file: KernelPtr) {
    if !identity_probe_wanted() {
        return;
    }
    let Some(probe) = IDENTITY_PROBE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: an array map's value, valid for the program's run.
    let probe = unsafe { &mut *probe };
    if let Some(key) = file_inode(off, file).and_then(|inode| inode_key(off, inode)) {
        probe.seen = key;
    }
}

/// Whether the current thread is the daemon's identity probe.
#[inline(always)]
fn identity_probe_wanted() -> bool {
    IDENTITY_PROBE
        .get(0)
        .is_some_and(|probe| probe.tid != 0 && probe.tid == bpf_get_current_pid_tgid() as u32)
}

#[inline(always)]
fn decide_path(off: &KernelOffsets, op: FileOp, path: KernelPtr) -> i32 {
    match path_dentry(off, path) {
        Some(dentry) => decide(off, op, dentry),
        None => 0,
    }
}

/// `RENAME_EXCHANGE` in `path_rename`'s flags (include/uapi/linux/fs.h).
const RENAME_EXCHANGE: u64 = 1 << 1;
/// Set in `rtguard_rename_decide`'s `mode` when the directories are `struct path`s
/// (`path_rename`) rather than inodes (`inode_rename`).
const RENAME_DIRS_ARE_PATHS: u64 = 1 << 32;

/// A rename is checked on both sides: the object moved away, and the one it lands on.
/// Landing on an object from the same directory is a replacement ([`FileOp::Replace`]),
/// which configuration files allow, and the incoming file inherits the protection. An
/// exchange (`RENAME_EXCHANGE`) moves the target away too, so it stays a rename.
///
/// A global function, like `rtguard_file_decide`: comparing the directories inline in
/// each hook let the compiler sink the argument reads into branches, and the verifier
/// then found a register read that was never written on some path.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_rename_decide(
    old_dir: u64,
    old: u64,
    new_dir: u64,
    new: u64,
    mode: u64,
) -> i32 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    let (old_dir, new_dir) = if mode & RENAME_DIRS_ARE_PATHS != 0 {
        let dentry = |path: u64| path_dentry(off, path as KernelPtr).map_or(0, |d| d as u64);
        (dentry(old_dir), dentry(new_dir))
    } else {
        (old_dir, new_dir)
    };
    let replace = old_dir != 0 && old_dir == new_dir && mode & RENAME_EXCHANGE == 0;
    let verdict = decide(off, FileOp::Rename, old as KernelPtr);
    if verdict != 0 {
        return verdict;
    }
    // The target name usually does not exist yet (negative dentry): nothing to check.
    if replace {
        decide_replacing(off, FileOp::Replace, new as KernelPtr, old as KernelPtr)
    } else {
        decide(off, FileOp::Rename, new as KernelPtr)
    }
}

#[inline(always)]
fn decide_setattr(off: &KernelOffsets, dentry: KernelPtr, attr: KernelPtr) -> i32 {
    if iattr_valid(off, attr).is_some_and(|v| v & ATTR_BREAKING != 0) {
        decide(off, FileOp::Setattr, dentry)
    } else {
        0
    }
}

/// The protection that applies, and where it was found: the anchor's identity (the
/// target's own, or the tree root's above it).
///
/// No depth: a walk that returned the level it stopped at would hand the verifier a
/// different constant from each level, and it would check everything after the walk once
/// per level. The event's names are collected up to the anchor instead, found again by
/// identity (a remembered tree root comes with no dentry).
struct Match {
    protection: FileProtection,
    anchor: InodeKey,
}

#[inline(always)]
fn decide(off: &KernelOffsets, op: FileOp, dentry: KernelPtr) -> i32 {
    decide_replacing(off, op, dentry, core::ptr::null_mut())
}

/// [`decide`] for an object that `incoming` (null if none) is about to replace.
#[inline(always)]
fn decide_replacing(
    _off: &KernelOffsets,
    op: FileOp,
    dentry: KernelPtr,
    incoming: KernelPtr,
) -> i32 {
    let outcome = rtguard_file_decide(op.bit(), dentry as u64, incoming as u64);
    // SAFETY: a read of a local; volatile for the reason `restated` gives.
    let outcome = unsafe { core::ptr::read_volatile(&outcome) };
    let decision = (outcome >> OUTCOME_REPORT_SHIFT) as u32;
    if decision != 0 {
        rtguard_file_report(dentry as u64, decision);
    }
    // Through `restated`: the compiler makes `-(outcome & 1)` of the plain choice, and
    // 6.12's verifier, which checks that an LSM program returns 0 or an errno, does not
    // follow a negation.
    restated(if outcome & OUTCOME_DENY != 0 {
        EPERM
    } else {
        0
    })
}

/// `rtguard_file_decide`'s outcome: [`OUTCOME_DENY`] for a refusal, and from
/// [`OUTCOME_REPORT_SHIFT`] up the decision to report (0: none), whose record it has
/// started in this CPU's event slot. Its caller sends the record, one call down from the
/// program rather than two: the decision's stack frame is large, and the kernel allows
/// 512 bytes for the deepest chain of calls.
const OUTCOME_DENY: i32 = 1;
const OUTCOME_REPORT_SHIFT: u32 = 8;

/// The outcome of a decision to report: its record started, or counted as dropped.
#[inline(always)]
fn reported(op: FileOp, decision: Decision, target: InodeKey, m: &Match, deny: bool) -> i32 {
    let deny = if deny { OUTCOME_DENY } else { 0 };
    if start_report(op, target, m) {
        deny | (decision as i32) << OUTCOME_REPORT_SHIFT
    } else {
        deny
    }
}

/// The one decision every file hook makes.
///
/// A global (non-inlined, externally visible) function: the verifier checks it once per
/// program, on its own, instead of once per call site with every caller's state. That
/// keeps load time flat as hooks are added. Global functions take only scalars, hence
/// the raw op bit and pointer.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_file_decide(op_bit: u32, dentry: u64, incoming: u64) -> i32 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    let Some(op) = FileOp::from_u32(op_bit) else {
        return 0;
    };
    let dentry = dentry as KernelPtr;
    let Some(target) = dentry_key(off, dentry) else {
        return 0;
    };
    let task = current_task();
    let m = match find_protection(off, op, dentry, target) {
        None => return 0,
        Some(Found::Edit(m)) => {
            // The file replacing this one carries on its protection, and the one replaced
            // (gone from this name, or kept by dpkg as `*.dpkg-old`) loses it; userspace
            // resolves again after this event and comes to the same tables.
            if op == FileOp::Replace {
                move_protection(off, &m.protection, target, incoming as KernelPtr);
            }
            return reported(op, Decision::AllowedEdit, target, &m, false);
        }
        Some(Found::Denied(m)) => m,
    };
    match trust(task, m.protection.rule_id, m.protection.flags) {
        Trust::PackageManager
            if package_manager_may(off, op, &m, target, incoming as KernelPtr) =>
        {
            return reported(op, Decision::AllowedUpgrade, target, &m, false);
        }
        // The package manager removing what it is not upgrading: decided as for anyone.
        Trust::PackageManager => {}
        // A tree's own writers at work: not an event, or the runtime would flood the log.
        Trust::Writer => return 0,
        Trust::None => {}
    }
    if rule_enforces(m.protection.rule_id) {
        reported(op, Decision::Blocked, target, &m, true)
    } else {
        reported(op, Decision::WouldBlock, target, &m, false)
    }
}

/// What the package manager's own process may do to an upgradable object.
/// - Rename a new file over it: the shape of every upgrade and reinstall (dpkg's
///   `NAME.dpkg-new`, rpm's `NAME;XXXXXXXX`). The new file takes the object's protection
///   at once, and the one replaced loses it: dpkg keeps it as `NAME.dpkg-tmp` (or the
///   status file as `status-old`) and removes it later, maybe from another process.
///   The process is then upgrading the object's package, unless the object is one of
///   dpkg's records, which a removal rewrites too.
/// - Remove or rename it only while upgrading its package (the files a new version
///   drops), or when a window allows removal. Removing a package any other way, as an
///   install that `Conflicts:` with it or `dpkg --purge --pending` would, is refused.
///   A configuration file may be renamed, as dpkg keeps the old one as `NAME.dpkg-old`.
/// - Anything else in place, as before.
#[inline(always)]
fn package_manager_may(
    off: &KernelOffsets,
    op: FileOp,
    m: &Match,
    target: InodeKey,
    incoming: KernelPtr,
) -> bool {
    let p = &m.protection;
    let upgrade = UpgradeKey {
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        package: p.package,
    };
    match op {
        FileOp::Replace => {
            if p.package != NO_PACKAGE && p.flags & FILE_PACKAGE_RECORD == 0 {
                let _ = UPGRADES.insert(upgrade, 1u8, 0);
            }
            if m.anchor == target {
                move_protection(off, p, target, incoming);
            }
            true
        }
        FileOp::Unlink | FileOp::Rmdir | FileOp::Rename => {
            p.flags & FILE_REMOVABLE != 0
                || (op == FileOp::Rename && p.flags & FILE_EDITABLE != 0)
                || (p.package != NO_PACKAGE && unsafe { UPGRADES.get(upgrade) }.is_some())
        }
        _ => true,
    }
}

/// A file renamed over a protected object takes its protection at once, and the object
/// replaced (gone from its name, or kept as `*.dpkg-tmp` / `*.dpkg-old`) loses it;
/// userspace resolves again after the event and comes to the same tables.
#[inline(always)]
fn move_protection(
    off: &KernelOffsets,
    protection: &FileProtection,
    target: InodeKey,
    incoming: KernelPtr,
) {
    if let Some(new) = dentry_key(off, incoming) {
        let _ = PROTECTED_INODES.insert(new, *protection, 0);
        let _ = PROTECTED_INODES.remove(target);
    }
}

/// What [`find_protection`] found.
enum Found {
    /// A protection that denies the operation.
    Denied(Match),
    /// A configuration file ([`FILE_EDITABLE`]) being edited: allowed, and reported.
    Edit(Match),
}

/// An object's own protection first, then protected trees found by walking up the
/// parent dentries. The walk follows the filesystem's own tree, not the mount tree, so
/// bind mounts, chroots and mount namespaces lead to the same roots. Above the target,
/// the tree-walk cache answers for directories it has seen with nothing above them.
#[inline(always)]
fn find_protection(
    off: &KernelOffsets,
    op: FileOp,
    dentry: KernelPtr,
    target: InodeKey,
) -> Option<Found> {
    if let Some(p) = unsafe { PROTECTED_INODES.get(target) } {
        let m = Match {
            protection: *p,
            anchor: target,
        };
        if p.denies(op) {
            return Some(Found::Denied(m));
        }
        if p.flags & FILE_EDITABLE != 0 && op.bit() & OPS_EDIT != 0 {
            // Named from its directory: a file that replaced another has a new inode,
            // which userspace's tables learn only when it resolves again.
            let parent = dentry_parent(off, dentry)
                .filter(|&d| d != dentry)
                .and_then(|d| dentry_key(off, d));
            return Some(Found::Edit(match parent {
                Some(key) => Match { anchor: key, ..m },
                None => m,
            }));
        }
    }
    // By superblock: a tree on btrfs covers nested subvolumes, whose files have another
    // device than the tree root's.
    unsafe { TREE_DEVICES.get(dentry_sb_dev(off, dentry)?) }?;
    // The target itself may root a tree, or an excluded subtree, if it is a directory:
    // userspace roots trees at directories only (the policy resolver and
    // `KernelTables::protect_tree` refuse anything else), and a file that took a removed
    // root's inode number roots nothing. The fast path skips the lookup for files too.
    if dentry_is_dir(off, dentry) != Some(false) {
        match tree_root(target, op.bit()) {
            TreeRoot::Excluded => return None,
            TreeRoot::Denies(protection) => {
                return Some(Found::Denied(Match {
                    protection,
                    anchor: target,
                }))
            }
            TreeRoot::Not => {}
        }
    }
    // What is mounted inside a tree does not hide the tree.
    if op == FileOp::Mount {
        return None;
    }
    let parent = dentry_parent(off, dentry).filter(|&p| p != dentry)?;
    let pending = match tree_cache::probe(off, parent, op) {
        Probe::Clear => return None,
        Probe::Denied(anchor, protection) => {
            return Some(Found::Denied(Match { protection, anchor }))
        }
        Probe::Miss(pending) => Some(pending),
        Probe::Uncached => None,
    };
    // `bpf_loop`, not a loop: the verifier checks one level once, and what ends the walk
    // once, instead of both at every level of an unrolled loop.
    let mut walk = TreeWalk {
        dentry: parent as u64,
        child: dentry as u64,
        op_bit: op.bit(),
        outcome: WALK_FAILED,
    };
    unsafe {
        bpf_loop(
            MAX_TREE_DEPTH - 1,
            tree_walk_level as *mut c_void,
            (&raw mut walk).cast(),
            0,
        );
    }
    // SAFETY: reads of a local the callback wrote through its pointer. Still
    // `WALK_FAILED` if the walk went deeper than it may: nothing found, nothing learnt.
    let (outcome, d, child) = unsafe {
        (
            core::ptr::read_volatile(&walk.outcome),
            core::ptr::read_volatile(&walk.dentry),
            core::ptr::read_volatile(&walk.child),
        )
    };
    match outcome {
        WALK_CLEAR => {
            if let Some(pending) = &pending {
                tree_cache::record_clear(pending, op);
            }
            None
        }
        WALK_FOUND => {
            let anchor = dentry_key(off, d as KernelPtr)?;
            // The answer holds for everything in `parent` unless it hung on the target's
            // own name: `parent` is the tree root, and the target's name may or may not
            // be excluded. Other than that, excluded by name is as stable as any other
            // "no tree above": the same epochs end it.
            let pending = pending.as_ref().filter(|_| child != dentry as u64);
            if rtguard_excluded_child(anchor.ino, anchor.dev, child) != 0 {
                if let Some(pending) = pending {
                    tree_cache::record_clear(pending, op);
                }
                return None;
            }
            let protection = *unsafe { PROTECTED_TREES.get(anchor) }?;
            if let Some(pending) = pending {
                tree_cache::record_denied(pending, op, anchor);
            }
            Some(Found::Denied(Match { protection, anchor }))
        }
        _ => None,
    }
}

/// The tree walk's state, on the stack of [`find_protection`] for `bpf_loop`.
struct TreeWalk {
    /// The dentry the next level looks at; where the walk stopped, at its end.
    dentry: u64,
    /// The walk's dentry just below `dentry`: at a tree root, its name may exclude the
    /// subtree.
    child: u64,
    op_bit: u32,
    /// What ended the walk: `WALK_CLEAR`, `WALK_FOUND` or `WALK_FAILED`.
    outcome: u64,
}

/// One level of [`find_protection`]'s walk, as `bpf_loop`'s callback: moves `walk` up to
/// the parent, or stops the loop with its outcome.
#[inline(never)]
extern "C" fn tree_walk_level(_index: u64, walk: *mut c_void) -> i64 {
    let walk = walk.cast::<TreeWalk>();
    // SAFETY: `walk` is find_protection's local, for the loop's length.
    let d = unsafe { (*walk).dentry };
    let next = rtguard_tree_level(d, unsafe { (*walk).op_bit });
    if next <= WALK_FAILED {
        unsafe { (*walk).outcome = next };
        return loop_stops(true);
    }
    unsafe {
        (*walk).child = d;
        (*walk).dentry = next;
    }
    loop_stops(false)
}

/// Returned by `rtguard_tree_level`: no tree denies the operation from here up (the
/// filesystem's root, or an excluded subtree, was reached).
const WALK_CLEAR: u64 = 0;
/// Returned by `rtguard_tree_level`: this dentry roots a tree that denies the operation.
const WALK_FOUND: u64 = 1;
/// Returned by `rtguard_tree_level`: a read failed; nothing is known.
const WALK_FAILED: u64 = 2;
/// Returned by the trust and name walks: stop, nothing found.
const WALK_END: u64 = 0;
/// Returned by `rtguard_trust_level`: a trusted writer for the rule.
const WALK_WRITER: u64 = 1;
/// Returned by `rtguard_trust_level`: the package manager, for an upgradable object.
const WALK_PACKAGE_MANAGER: u64 = 2;
/// Returned by `rtguard_name_level`: the dentry is the anchor (its name is not taken).
const WALK_AT_ANCHOR: u64 = 1;

// The walks below do one level per call and are global functions, so the verifier checks
// each body once instead of once per unrolled iteration: a 32-level walk then costs the
// caller a few instructions per level. Any other return value is the next kernel pointer
// (kernel addresses are never this small).

/// One level of the tree walk: `WALK_FOUND`, `WALK_CLEAR` at the filesystem root or an
/// excluded subtree, `WALK_FAILED` on a failed read or at a disconnected dentry (one
/// found by file handle before the kernel linked it to its parent: its ancestors are not
/// known, so neither is the answer, and nothing is remembered), or the parent dentry.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_tree_level(dentry: u64, op_bit: u32) -> u64 {
    let Some(off) = resolved_offsets() else {
        return WALK_FAILED;
    };
    let d = dentry as KernelPtr;
    let Some(key) = dentry_key(off, d) else {
        return WALK_FAILED;
    };
    match tree_root(key, op_bit) {
        TreeRoot::Excluded => return WALK_CLEAR,
        TreeRoot::Denies(_) => return WALK_FOUND,
        TreeRoot::Not => {}
    }
    match dentry_parent(off, d) {
        Some(parent) if parent == d && dentry_is_fs_root(off, d) => WALK_CLEAR,
        Some(parent) if parent == d => WALK_FAILED,
        Some(parent) => parent as u64,
        None => WALK_FAILED,
    }
}

/// Whether the tree rooted at (`tree_dev`, `tree_ino`) excludes its child `child` by name
/// (1) or not (0). A global function; the key it builds lives in a per-CPU slot.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_excluded_child(tree_ino: u64, tree_dev: u32, child: u64) -> u32 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    let tree = InodeKey::new(tree_dev, tree_ino);
    u32::from(child_lookup(off, tree, child as KernelPtr, &EXCLUDED_CHILDREN).is_some())
}

/// How many times `child_lookup` builds its key when another task keeps overwriting it,
/// before it keeps the last lookup.
const CHILD_LOOKUP_ATTEMPTS: u32 = 4;

/// Looks up the (directory, name) key of `child` under `dir` in `map`. The key is built
/// in a per-CPU slot and looked up by reference, since a copy would put its 80 bytes back
/// on the stack. A BPF LSM program runs with migration, not preemption, disabled: on a
/// preemptible kernel another task on this CPU can build its own key in the slot while
/// this one is preempted. The slot's stamp says so, and the lookup is done again.
#[inline(always)]
fn child_lookup<V: Copy>(
    off: &KernelOffsets,
    dir: InodeKey,
    child: KernelPtr,
    map: &HashMap<ExcludedChildKey, V>,
) -> Option<V> {
    let name = dentry_name(off, child)?;
    let slot = EXCLUDED_CHILD_KEY.get_ptr_mut(0)?;
    let mut found = None;
    for _ in 0..CHILD_LOOKUP_ATTEMPTS {
        // SAFETY: an array map's value, valid for the program's run.
        let stamp = unsafe { stamp_take(&raw mut (*slot).stamp) };
        zero_words(unsafe { &raw mut (*slot).key });
        let key = unsafe { &mut (*slot).key };
        key.tree = dir;
        // A longer name fills the buffer without its end and matches no key, since keys
        // are NUL-terminated within it.
        if unsafe { bpf_probe_read_kernel_str_bytes(name, &mut key.name) }.is_err() {
            return None;
        }
        found = unsafe { map.get(key) }.copied();
        if unsafe { stamp_kept(&raw const (*slot).stamp, stamp) } {
            break;
        }
    }
    found
}

/// A name about to be created (`dentry`, still negative, or a rename's target): refused
/// when its directory protects that name. A protected unit's name in /etc/systemd/system
/// or /run/systemd/system, as a link to /dev/null, is a mask; as a file, it replaces the
/// unit. Returns `EPERM` or 0; reports either way.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_name_decide(dentry: u64) -> i32 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    let d = dentry as KernelPtr;
    let Some(parent) = dentry_parent(off, d) else {
        return 0;
    };
    let Some(dir) = dentry_key(off, parent) else {
        return 0;
    };
    if unsafe { NAME_DIRECTORIES.get(dir) }.is_none() {
        return 0;
    }
    let Some(rule_id) = child_lookup(off, dir, d, &PROTECTED_NAMES) else {
        return 0;
    };
    let m = Match {
        protection: FileProtection {
            rule_id,
            ops: FileOp::Create.bit(),
            flags: 0,
            package: NO_PACKAGE,
        },
        anchor: dir,
    };
    if rule_enforces(rule_id) {
        report(FileOp::Create, Decision::Blocked, dir, &m, d);
        EPERM
    } else {
        report(FileOp::Create, Decision::WouldBlock, dir, &m, d);
        0
    }
}

/// One level of the trust walk over the task and its ancestors: `WALK_PACKAGE_MANAGER`
/// (asked with `package_manager` set, for the task itself only), `WALK_WRITER`,
/// `WALK_END` at the top, or the parent task.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_trust_level(task: u64, rule_id: u32, package_manager: u32) -> u64 {
    let Some(off) = resolved_offsets() else {
        return WALK_END;
    };
    let t = task as KernelPtr;
    if let Some(exe) = task_exe(off, t) {
        if package_manager != 0
            && unsafe { TRUSTED_EXES.get(TrustKey::new(exe, TRUST_PACKAGE_MANAGER)) }.is_some()
        {
            return WALK_PACKAGE_MANAGER;
        }
        if unsafe { TRUSTED_EXES.get(TrustKey::new(exe, rule_id)) }.is_some() {
            return WALK_WRITER;
        }
    }
    match task_parent(off, t) {
        Some(parent) if parent != t => parent as u64,
        _ => WALK_END,
    }
}

enum Trust {
    None,
    /// A trusted writer for the rule that matched.
    Writer,
    /// The package manager, on an object it may upgrade.
    PackageManager,
}

/// Whether the task, or one of its ancestors, runs an executable trusted for `rule_id`,
/// or the package manager for an object whose `flags` let it. One walk answers both.
/// - An upgradable object: the task itself must be the package manager. What it runs
///   (maintainer scripts of any package, `pre-invoke` hooks) gets no more than any other
///   process.
/// - A removable one (a window allows its package's removal): the package manager's
///   whole process tree, as its own maintainer scripts disable and purge its units.
#[inline(always)]
fn trust(task: KernelPtr, rule_id: u32, flags: u32) -> Trust {
    let mut t = task as u64;
    let mut package_manager = u32::from(flags & FILE_UPGRADABLE != 0);
    let in_tree = u32::from(flags & FILE_REMOVABLE != 0);
    for _ in 0..MAX_TRUST_ANCESTRY {
        match rtguard_trust_level(t, rule_id, package_manager) {
            WALK_END => return Trust::None,
            WALK_WRITER => return Trust::Writer,
            WALK_PACKAGE_MANAGER => return Trust::PackageManager,
            parent => {
                t = parent;
                package_manager = in_tree;
            }
        }
    }
    Trust::None
}

/// Copies the dentry's name into the event scratch slot `slot` and returns its parent
/// (`WALK_END` if there is none), or `WALK_AT_ANCHOR` if the dentry is the anchor
/// `(anchor_ino, anchor_dev)`. Directories have one dentry each, so the identity finds it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_name_level(
    dentry: u64,
    slot: u32,
    anchor_ino: u64,
    anchor_dev: u32,
) -> u64 {
    let Some(off) = resolved_offsets() else {
        return WALK_END;
    };
    let d = dentry as KernelPtr;
    if matches!(dentry_key(off, d), Some(k) if k.ino == anchor_ino && k.dev == anchor_dev) {
        return WALK_AT_ANCHOR;
    }
    let Some(ev) = EVENT_SCRATCH.get_ptr_mut(0) else {
        return WALK_END;
    };
    // The mask is the bound the verifier can see (EVENT_PATH_COMPONENTS is a power of
    // two); callers pass slots below it. An `if slot >= N` check alone would be folded
    // into the index arithmetic and lost.
    let index = slot as usize & (EVENT_PATH_COMPONENTS - 1);
    let name_slot: &mut [u8; EVENT_NAME_LEN] = unsafe { &mut (*ev).names[index] };
    if let Some(name) = dentry_name(off, d) {
        if unsafe { bpf_probe_read_kernel_str_bytes(name, name_slot) }.is_err() {
            name_slot[0] = 0;
        }
    }
    match dentry_parent(off, d) {
        Some(parent) if parent != d => parent as u64,
        _ => WALK_END,
    }
}

/// Reports a file decision: [`start_report`], then [`rtguard_file_report`].
#[inline(always)]
fn report(op: FileOp, decision: Decision, target: InodeKey, m: &Match, dentry: KernelPtr) {
    if start_report(op, target, m) {
        rtguard_file_report(dentry as u64, decision as u32);
    }
}

/// Starts a file event in this CPU's event slot with what differs from one call site to
/// the next (the operation, the target, the match), in a few stores; false (and the
/// event counted as dropped) without a slot. [`rtguard_file_report`] completes it. Inlined
/// as a whole, the report was verified once per call site, some 6,000 instructions per
/// file program; as a global function it is verified once per program.
#[inline(always)]
fn start_report(op: FileOp, target: InodeKey, m: &Match) -> bool {
    let Some(ev) = EVENT_SCRATCH.get_ptr_mut(0) else {
        count_dropped_event();
        return false;
    };
    // SAFETY: an array map's value, valid for the program's run.
    unsafe {
        (*ev).target = target;
        (*ev).anchor = m.anchor;
        (*ev).op = op.bit();
        (*ev).rule_id = m.protection.rule_id;
    }
    true
}

/// Completes the file event [`start_report`] started in this CPU's event slot (the
/// header, the actor's command line, the names from the target up to the anchor) and
/// sends it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_file_report(dentry: u64, decision: u32) -> i32 {
    let (Some(off), Some(decision)) = (resolved_offsets(), Decision::from_u32(decision)) else {
        return 0;
    };
    let Some(ev) = EVENT_SCRATCH.get_ptr_mut(0) else {
        count_dropped_event();
        return 0;
    };
    let task = current_task();
    // Every field is written, so nothing from the previous event on this CPU leaks into
    // this one. The record is written through the raw pointer because
    // `rtguard_name_level` fills the names in the same per-CPU slot.
    let anchor = unsafe {
        let exe = task_exe(off, task).unwrap_or_default();
        fill_header(&mut (*ev).header, EventKind::File, decision, off, task, exe);
        current_cmdline(off, task, &mut (*ev).cmdline);
        for slot in 0..EVENT_PATH_COMPONENTS {
            (*ev).names[slot][0] = 0;
        }
        (*ev).anchor
    };
    // Names from the target up to (not including) the anchor that matched.
    let mut d = dentry;
    let mut count = 0u32;
    for slot in 0..EVENT_PATH_COMPONENTS as u32 {
        if d == WALK_END {
            break;
        }
        d = rtguard_name_level(d, slot, anchor.ino, anchor.dev);
        if d == WALK_AT_ANCHOR {
            break;
        }
        count += 1;
    }
    // Every slot used and the anchor still above: the path is cut short.
    let truncated = d != WALK_AT_ANCHOR && d != WALK_END;
    unsafe {
        (*ev).name_count = count;
        (*ev).flags = if truncated { EVENT_PATH_TRUNCATED } else { 0 };
    }
    if EVENTS.output::<FileEvent>(unsafe { &*ev }, 0).is_err() {
        count_dropped_event();
    }
    0
}

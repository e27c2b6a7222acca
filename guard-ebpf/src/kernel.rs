//! Typed reads of kernel structs, at offsets the loader resolved from the running kernel's BTF.
//!
//! Every read goes through `bpf_probe_read_kernel`: the programs hold plain pointers, not
//! BTF-typed ones, because rustc emits no CO-RE relocations. Each accessor returns `None`
//! when a read fails or a pointer is NULL, and the callers treat that as "not protected".

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_get_current_uid_gid, bpf_probe_read_kernel, generated,
    },
    EbpfContext,
};
use core::{
    ffi::c_void,
    sync::atomic::{compiler_fence, Ordering},
};
use guard_common::{
    event::{ActorCmdline, EventHeader, EventKind, ACTOR_CMDLINE_LEN, CMDLINE_TRUNCATED},
    fs_layout::BTRFS_SUPER_MAGIC,
    inode::kernel_dev,
    process::Disposition,
    Decision, InodeKey, KernelOffsets,
};

use crate::maps::{offsets, FS_LAYOUT};

pub type KernelPtr = *const c_void;

#[inline(always)]
pub fn read_at<T>(base: KernelPtr, offset: u32) -> Option<T> {
    if base.is_null() {
        return None;
    }
    unsafe { bpf_probe_read_kernel(base.cast::<u8>().add(offset as usize).cast::<T>()).ok() }
}

#[inline(always)]
pub fn read_ptr(base: KernelPtr, offset: u32) -> Option<KernelPtr> {
    read_at::<KernelPtr>(base, offset).filter(|p| !p.is_null())
}

/// The offsets, or `None` if the loader never filled them (the programs then do nothing).
#[inline(always)]
pub fn resolved_offsets() -> Option<&'static KernelOffsets> {
    let off = offsets();
    off.is_resolved().then_some(off)
}

/// One field of the offsets block, read on its own from the frozen `.rodata`: the verifier
/// knows its value, which a load through a [`BtfPtr`] needs, and nothing else is copied.
macro_rules! offset {
    ($field:ident) => {
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!(crate::maps::OFFSETS.$field)) }
    };
}
pub(crate) use offset;

/// `S_IFMT` and the file types in `i_mode` (the stat(2) ABI).
pub const S_IFMT: u16 = 0o170000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFSOCK: u16 = 0o140000;

/// [`KernelOffsets::is_resolved`] from the three fields it reads.
#[inline(always)]
pub fn offsets_resolved() -> bool {
    offset!(inode_i_sb) != 0 && offset!(super_block_s_dev) != 0 && offset!(inode_setattr_args) != 0
}

/// A pointer the verifier typed from the kernel's BTF: a hook's argument, or a pointer
/// field loaded through one. A load through it is one instruction, which the JIT makes
/// fault-safe (a bad address reads as 0), where [`read_at`] is a helper call. The offset
/// must be known to the verifier ([`offset!`]); and a global function cannot take such a
/// pointer (only scalars, see [`arg_scalar`]), so these loads stay in the hooks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BtfPtr(*const u8);

impl BtfPtr {
    /// Argument `n` of a BTF-typed program, as the verifier typed it.
    #[inline(always)]
    pub fn arg(ctx: &impl EbpfContext, n: usize) -> Self {
        let slot = unsafe { (ctx.as_ptr() as *const *const u8).add(n) };
        Self(unsafe { core::ptr::read_volatile(slot) })
    }

    /// A pointer a helper returned typed (`bpf_get_current_task_btf`).
    #[inline(always)]
    pub fn from_btf(ptr: *const u8) -> Self {
        Self(ptr)
    }

    #[inline(always)]
    pub fn is_null(self) -> bool {
        self.0.is_null()
    }

    /// The field at `offset`, which must be a `T` in the pointed-to struct.
    #[inline(always)]
    pub fn load<T: Copy>(self, offset: u32) -> T {
        unsafe { core::ptr::read_volatile(self.0.wrapping_add(offset as usize).cast::<T>()) }
    }

    /// The pointer field at `offset`.
    #[inline(always)]
    pub fn ptr(self, offset: u32) -> BtfPtr {
        Self(self.load::<*const u8>(offset))
    }
}

/// An inode's identity as [`inode_key`] has it, by direct loads; `None` on btrfs, whose
/// subvolume devices only [`rtguard_inode_dev`]'s reads find (a `container_of` the
/// verifier does not allow through a BTF pointer).
#[inline(always)]
pub fn btf_inode_key(inode: BtfPtr) -> Option<InodeKey> {
    if inode.is_null() {
        return None;
    }
    let sb = inode.ptr(offset!(inode_i_sb));
    if sb.is_null() {
        return None;
    }
    if sb.load::<u64>(offset!(super_block_s_magic)) == BTRFS_SUPER_MAGIC {
        return None;
    }
    let dev: u32 = sb.load(offset!(super_block_s_dev));
    Some(InodeKey::new(dev, inode.load(offset!(inode_i_ino))))
}

/// Whether a BTF-typed inode is a directory.
#[inline(always)]
pub fn btf_inode_is_dir(inode: BtfPtr) -> bool {
    !inode.is_null() && inode.load::<u16>(offset!(inode_i_mode)) & S_IFMT == S_IFDIR
}

/// An inode's identity as `stat(2)` reports it, which is what userspace resolved the
/// policy into: (`st_dev`, `st_ino`).
#[inline(always)]
pub fn inode_key(off: &KernelOffsets, inode: KernelPtr) -> Option<InodeKey> {
    // i_ino is `unsigned long`: 64 bits on every 64-bit architecture we load on.
    let ino: u64 = read_at(inode, off.inode_i_ino)?;
    match rtguard_inode_dev(inode as u64) {
        DEV_UNKNOWN => None,
        dev => Some(InodeKey::new(dev as u32, ino)),
    }
}

/// Returned by `rtguard_inode_dev` when a read failed.
const DEV_UNKNOWN: u64 = u64::MAX;

/// The device `stat(2)` reports for an inode: its superblock's `s_dev`, except on btrfs,
/// where it is the subvolume's anonymous device (`btrfs_getattr`), or `DEV_UNKNOWN`.
///
/// A global function: every identity goes through it, inside the tree and trust walks
/// too, and the verifier checks its body once instead of at each of those places.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_inode_dev(inode: u64) -> u64 {
    let Some(off) = resolved_offsets() else {
        return DEV_UNKNOWN;
    };
    let inode = inode as KernelPtr;
    let Some(sb) = read_ptr(inode, off.inode_i_sb) else {
        return DEV_UNKNOWN;
    };
    if read_at::<u64>(sb, off.super_block_s_magic) == Some(BTRFS_SUPER_MAGIC) {
        if let Some(dev) = btrfs_subvolume_dev(inode) {
            return u64::from(dev);
        }
    }
    // Until userspace has read the btrfs module's BTF, btrfs inodes fall back to s_dev.
    // That is only a window: without the module loaded there is no btrfs inode.
    read_at::<u32>(sb, off.super_block_s_dev).map_or(DEV_UNKNOWN, u64::from)
}

/// `BTRFS_I(inode)->root->anon_dev`, if the layout is known and the inode belongs to a
/// subvolume (every user-visible btrfs inode does; the filesystem's internal ones have
/// no anonymous device).
#[inline(always)]
fn btrfs_subvolume_dev(inode: KernelPtr) -> Option<u32> {
    let layout = FS_LAYOUT.get(0)?;
    if !layout.btrfs_is_resolved() {
        return None;
    }
    // BTRFS_I() is a container_of: the VFS inode is a member of struct btrfs_inode.
    let btrfs_inode = (inode as usize).wrapping_sub(layout.btrfs_inode_vfs_inode as usize);
    let root = read_ptr(btrfs_inode as KernelPtr, layout.btrfs_inode_root)?;
    let dev: u32 = read_at(root, layout.btrfs_root_anon_dev)?;
    (dev != 0).then_some(dev)
}

/// The `s_dev` of the superblock a dentry belongs to, whatever `stat(2)` reports for it.
#[inline(always)]
pub fn dentry_sb_dev(off: &KernelOffsets, dentry: KernelPtr) -> Option<u32> {
    read_at(read_ptr(dentry, off.dentry_d_sb)?, off.super_block_s_dev)
}

/// `dentry->d_sb->s_magic`: which filesystem the dentry is on.
#[inline(always)]
pub fn dentry_sb_magic(off: &KernelOffsets, dentry: KernelPtr) -> Option<u64> {
    read_at(read_ptr(dentry, off.dentry_d_sb)?, off.super_block_s_magic)
}

/// The inode behind a dentry; `None` for a negative dentry.
#[inline(always)]
fn dentry_inode(off: &KernelOffsets, dentry: KernelPtr) -> Option<KernelPtr> {
    read_ptr(dentry, off.dentry_d_inode)
}

/// Whether the inode behind a dentry is a directory; `None` for a negative dentry or a
/// failed read.
#[inline(always)]
pub fn dentry_is_dir(off: &KernelOffsets, dentry: KernelPtr) -> Option<bool> {
    let mode: u16 = read_at(dentry_inode(off, dentry)?, off.inode_i_mode)?;
    Some(mode & S_IFMT == S_IFDIR)
}

/// Identity of the inode behind a dentry; `None` for a negative dentry.
#[inline(always)]
pub fn dentry_key(off: &KernelOffsets, dentry: KernelPtr) -> Option<InodeKey> {
    inode_key(off, dentry_inode(off, dentry)?)
}

/// Identity and `i_generation` of the inode behind a dentry; `None` for a negative dentry.
#[inline(always)]
pub fn dentry_key_generation(off: &KernelOffsets, dentry: KernelPtr) -> Option<(InodeKey, u32)> {
    let inode = dentry_inode(off, dentry)?;
    Some((
        inode_key(off, inode)?,
        read_at(inode, off.inode_i_generation)?,
    ))
}

/// The parent dentry; a filesystem's root is its own parent.
#[inline(always)]
pub fn dentry_parent(off: &KernelOffsets, dentry: KernelPtr) -> Option<KernelPtr> {
    read_ptr(dentry, off.dentry_d_parent)
}

/// Whether a dentry that is its own parent is its filesystem's root (`d_sb->s_root`),
/// rather than a disconnected one, whose place in the tree is not known yet.
#[inline(always)]
pub fn dentry_is_fs_root(off: &KernelOffsets, dentry: KernelPtr) -> bool {
    read_ptr(dentry, off.dentry_d_sb)
        .and_then(|sb| read_ptr(sb, off.super_block_s_root))
        .is_some_and(|root| root == dentry)
}

/// The dentry's name (`d_name.name`), a NUL-terminated kernel string.
#[inline(always)]
pub fn dentry_name(off: &KernelOffsets, dentry: KernelPtr) -> Option<*const u8> {
    read_ptr(dentry, off.dentry_d_name + off.qstr_name).map(|p| p.cast())
}

/// `path->dentry`.
#[inline(always)]
pub fn path_dentry(off: &KernelOffsets, path: KernelPtr) -> Option<KernelPtr> {
    read_ptr(path, off.path_dentry)
}

/// `file->f_path.dentry`.
#[inline(always)]
pub fn file_dentry(off: &KernelOffsets, file: KernelPtr) -> Option<KernelPtr> {
    read_ptr(file, off.file_f_path + off.path_dentry)
}

/// `file->f_inode`.
#[inline(always)]
pub fn file_inode(off: &KernelOffsets, file: KernelPtr) -> Option<KernelPtr> {
    read_ptr(file, off.file_f_inode)
}

#[inline(always)]
pub fn file_mode(off: &KernelOffsets, file: KernelPtr) -> Option<u32> {
    read_at(file, off.file_f_mode)
}

#[inline(always)]
pub fn file_flags(off: &KernelOffsets, file: KernelPtr) -> Option<u32> {
    read_at(file, off.file_f_flags)
}

#[inline(always)]
pub fn iattr_valid(off: &KernelOffsets, attr: KernelPtr) -> Option<u32> {
    read_at(attr, off.iattr_ia_valid)
}

#[inline(always)]
pub fn current_task() -> KernelPtr {
    unsafe { bpf_get_current_task() as KernelPtr }
}

/// The (dev, ino) of the task's executable; `None` for kernel threads.
#[inline(always)]
pub fn task_exe(off: &KernelOffsets, task: KernelPtr) -> Option<InodeKey> {
    let mm = read_ptr(task, off.task_mm)?;
    let exe_file = read_ptr(mm, off.mm_exe_file)?;
    inode_key(off, file_inode(off, exe_file)?)
}

/// The inode number of the task's mount namespace.
#[inline(always)]
pub fn task_mnt_ns(off: &KernelOffsets, task: KernelPtr) -> Option<u32> {
    let nsproxy = read_ptr(task, off.task_nsproxy)?;
    let mnt_ns = read_ptr(nsproxy, off.nsproxy_mnt_ns)?;
    read_at(mnt_ns, off.mnt_namespace_inum)
}

/// The task's controlling terminal as a device number in the kernel's encoding (what
/// `tty_devnum()` gives), 0 when it has none.
#[inline(always)]
pub fn task_tty(off: &KernelOffsets, task: KernelPtr) -> u32 {
    let Some(tty) =
        read_ptr(task, off.task_signal).and_then(|s| read_ptr(s, off.signal_struct_tty))
    else {
        return 0;
    };
    let index: u32 = read_at(tty, off.tty_struct_index).unwrap_or(0);
    let Some(driver) = read_ptr(tty, off.tty_struct_driver) else {
        return 0;
    };
    let major: u32 = read_at(driver, off.tty_driver_major).unwrap_or(0);
    let minor_start: u32 = read_at(driver, off.tty_driver_minor_start).unwrap_or(0);
    kernel_dev(major, minor_start + index)
}

/// [`task_tty`] in the low half and [`task_mnt_ns`] in the high half. A global function,
/// so that these reads stay out of the decision functions' frames: the exec decision's
/// call chain is at 6.1's 512-byte combined stack limit.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_task_terminal(task: u64) -> u64 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    let task = task as KernelPtr;
    let mnt_ns = task_mnt_ns(off, task).unwrap_or(0);
    u64::from(mnt_ns) << 32 | u64::from(task_tty(off, task))
}

/// What `task`'s thread group does with signal `sig` (1 to 64):
/// `task->sighand->action[sig - 1].sa.sa_handler`. An exiting task, whose `sighand` is
/// already gone, reads as the default.
#[inline(always)]
pub fn task_disposition(off: &KernelOffsets, task: KernelPtr, sig: u32) -> Disposition {
    let Some(sighand) = read_ptr(task, off.task_sighand) else {
        return Disposition::Default;
    };
    let at = off.sighand_action_handler + (sig - 1) * off.k_sigaction_size;
    read_at::<u64>(sighand, at).map_or(Disposition::Default, Disposition::from_handler)
}

/// The process a procfs inode is about: `pid_task(proc_pid(inode), PIDTYPE_PID)`. Only
/// for an inode of a `/proc/PID/…` file; `None` where the offsets are not known or the
/// process has exited.
#[inline(always)]
pub fn proc_inode_task(off: &KernelOffsets, inode: KernelPtr) -> Option<KernelPtr> {
    if !off.proc_pid_resolved() {
        return None;
    }
    // container_of(inode, struct proc_inode, vfs_inode)
    let proc_inode = inode
        .cast::<u8>()
        .wrapping_sub(off.proc_inode_vfs_inode as usize)
        .cast::<c_void>();
    let pid = read_ptr(proc_inode, off.proc_inode_pid)?;
    // hlist_entry(pid->tasks[PIDTYPE_PID].first, struct task_struct, pid_links[PIDTYPE_PID])
    let first = read_ptr(pid, off.pid_tasks)?;
    Some(
        first
            .cast::<u8>()
            .wrapping_sub(off.task_pid_links as usize)
            .cast::<c_void>(),
    )
}

#[inline(always)]
pub fn task_parent(off: &KernelOffsets, task: KernelPtr) -> Option<KernelPtr> {
    read_ptr(task, off.task_real_parent)
}

#[inline(always)]
pub fn task_tgid(off: &KernelOffsets, task: KernelPtr) -> Option<u32> {
    read_at(task, off.task_tgid)
}

/// Reads argument `n` of a BTF-typed program (an LSM hook, an fexit) as a plain number.
/// The verifier types arguments read from the context as BTF pointers, which a global
/// function may not receive; a probe read of the context slot gives the same value as a
/// scalar.
#[inline(always)]
pub fn arg_scalar(ctx: &impl EbpfContext, n: usize) -> KernelPtr {
    let slot = unsafe { (ctx.as_ptr() as *const u64).add(n) };
    unsafe { bpf_probe_read_kernel(slot) }.unwrap_or(0) as KernelPtr
}

/// `bprm->file->f_inode`'s identity: the file being executed.
#[inline(always)]
pub fn bprm_exe(off: &KernelOffsets, bprm: KernelPtr) -> Option<InodeKey> {
    let file = read_ptr(bprm, off.linux_binprm_file)?;
    inode_key(off, file_inode(off, file)?)
}

/// `bprm->filename`: the path as given to execve, a NUL-terminated kernel string.
#[inline(always)]
pub fn bprm_filename(off: &KernelOffsets, bprm: KernelPtr) -> Option<*const u8> {
    read_ptr(bprm, off.linux_binprm_filename).map(|p| p.cast())
}

/// Whether this `bprm_check_security` call is an exec's first. For a `#!` script or a
/// binfmt_misc handler the hook runs again for the interpreter, after the kernel pointed
/// `bprm->interp` away from `bprm->filename`.
#[inline(always)]
pub fn bprm_is_first_pass(off: &KernelOffsets, bprm: KernelPtr) -> bool {
    // Compared as plain numbers: LLVM compares two `Option`s' payloads even where one is
    // `None`, through a register the verifier sees as never written.
    let interp = read_ptr(bprm, off.linux_binprm_interp).map_or(0, |p| p as u64);
    let filename = read_ptr(bprm, off.linux_binprm_filename).map_or(0, |p| p as u64);
    interp == filename
}

/// The caller's argv array (a user-space pointer) for the exec the current task is in,
/// from the registers it entered the syscall with. `None` for an exec entered by another
/// syscall than the native `execve` / `execveat` (a 32-bit or x32 caller's).
#[inline(always)]
pub fn exec_syscall_argv(off: &KernelOffsets) -> Option<u64> {
    let regs =
        unsafe { generated::bpf_task_pt_regs(generated::bpf_get_current_task_btf()) } as KernelPtr;
    // The low 32 bits: x32 callers set bit 30 of the number, and no native number needs
    // more.
    let nr = read_at::<u32>(regs, off.pt_regs_syscall_nr)?;
    let argv = if nr == off.execve_nr {
        off.pt_regs_execve_argv
    } else if nr == off.execveat_nr {
        off.pt_regs_execveat_argv
    } else {
        return None;
    };
    read_at::<u64>(regs, argv)
}

/// Copies the current task's command line (the argv strings at `mm->arg_start`) into
/// `out`, at most `ACTOR_CMDLINE_LEN - 1` bytes. Only for the current task: the user read
/// goes through the current address space. A failed read leaves `len` 0.
#[inline(always)]
pub fn current_cmdline(off: &KernelOffsets, task: KernelPtr, out: &mut ActorCmdline) {
    out.len = 0;
    out.flags = 0;
    let Some(mm) = read_ptr(task, off.task_mm) else {
        return;
    };
    let (Some(start), Some(end)) = (
        read_at::<u64>(mm, off.mm_arg_start),
        read_at::<u64>(mm, off.mm_arg_end),
    ) else {
        return;
    };
    let total = end.saturating_sub(start);
    let max = (ACTOR_CMDLINE_LEN - 1) as u64;
    if total > max {
        out.flags = CMDLINE_TRUNCATED;
    }
    let len = verifier_bound::<ACTOR_CMDLINE_LEN>(total.min(max) as usize);
    let read = unsafe {
        generated::bpf_probe_read_user(
            out.bytes.as_mut_ptr().cast(),
            len as u32,
            start as *const c_void,
        )
    };
    if read == 0 {
        out.len = len as u32;
    }
}

/// The current task's name into `comm`, in place. aya's `bpf_get_current_comm` returns it
/// in a zeroed array of its own, and zeroing a byte array is a call to the compiler's
/// byte-at-a-time `memset` (see [`zero_words`]). The helper writes every byte itself:
/// the name NUL-padded, or zeroes if it fails.
#[inline(always)]
pub fn current_comm(comm: &mut [u8; 16]) {
    unsafe { generated::bpf_get_current_comm(comm.as_mut_ptr().cast(), comm.len() as u32) };
}

/// Zeroes `value` in 8-byte stores. Zeroing plain data any other way (`= [0; N]` on a
/// byte array, `Default` on a struct holding one) becomes a call to the compiler's
/// `memset`, a loop of one-byte stores: at run time that is a store and a branch per
/// byte, and the verifier checks the loop byte by byte at every call, which was a third
/// of what it checked for a file program.
#[inline(always)]
pub fn zero_words<T>(value: *mut T) {
    const {
        assert!(size_of::<T>().is_multiple_of(8) && align_of::<T>() >= 8);
    }
    let words = value.cast::<u64>();
    for i in 0..size_of::<T>() / 8 {
        // SAFETY: within `value`, which the caller owns; volatile so that the compiler
        // does not turn the stores back into a `memset` call.
        unsafe { words.add(i).write_volatile(0) };
    }
}

/// `slot` zeroed a word at a time (see [`zero_words`]), as `N` bytes: a buffer for a name
/// read from the kernel. In place: a zeroed buffer moved out of a function was copied
/// with `memset` again.
#[inline(always)]
pub fn zeroed_bytes<const W: usize, const N: usize>(
    slot: &mut core::mem::MaybeUninit<[u64; W]>,
) -> &mut [u8; N] {
    const {
        assert!(N == 8 * W);
    }
    zero_words(slot.as_mut_ptr());
    // SAFETY: every byte was written, and `[u8; N]` has the slot's size.
    unsafe { &mut *slot.as_mut_ptr().cast() }
}

/// Fills the header every decision record starts with: what the record is, the decision,
/// and the current task as the actor. `exe` is that task's executable (`task_exe`), which
/// the callers have at hand.
#[inline(always)]
pub fn fill_header(
    header: &mut EventHeader,
    kind: EventKind,
    decision: Decision,
    off: &KernelOffsets,
    task: KernelPtr,
    exe: InodeKey,
) {
    let pid_tgid = bpf_get_current_pid_tgid();
    header.kind = kind as u32;
    header.decision = decision as u32;
    let actor = &mut header.actor;
    actor.exe = exe;
    actor.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    actor.pid = pid_tgid as u32;
    actor.tgid = (pid_tgid >> 32) as u32;
    actor.ppid = task_parent(off, task)
        .and_then(|p| task_tgid(off, p))
        .unwrap_or(0);
    actor.uid = bpf_get_current_uid_gid() as u32;
    current_comm(&mut actor.comm);
    let terminal = rtguard_task_terminal(task as u64);
    actor.tty = terminal as u32;
    actor.mnt_ns = (terminal >> 32) as u32;
}

/// Adds `n` to a counter other CPUs add to as well, as one atomic instruction
/// (`lock xadd` in BPF terms).
#[inline(always)]
pub fn atomic_add(counter: *mut u64, n: u64) {
    #[cfg(target_arch = "bpf")]
    unsafe {
        use core::intrinsics::{atomic_xadd, AtomicOrdering};
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(counter, n);
    }
    #[cfg(not(target_arch = "bpf"))]
    unsafe { core::sync::atomic::AtomicU64::from_ptr(counter) }
        .fetch_add(n, core::sync::atomic::Ordering::Relaxed);
}

/// Replaces `expected` in `word` with `new` if it is still there, as one atomic
/// instruction (BPF's `cmpxchg`); true when it was replaced.
#[inline(always)]
pub fn atomic_compare_exchange(word: *mut u64, expected: u64, new: u64) -> bool {
    #[cfg(target_arch = "bpf")]
    unsafe {
        use core::intrinsics::{atomic_cxchg, AtomicOrdering};
        atomic_cxchg::<u64, { AtomicOrdering::Relaxed }, { AtomicOrdering::Relaxed }>(
            word, expected, new,
        )
        .1
    }
    #[cfg(not(target_arch = "bpf"))]
    unsafe { core::sync::atomic::AtomicU64::from_ptr(word) }
        .compare_exchange(
            expected,
            new,
            core::sync::atomic::Ordering::Relaxed,
            core::sync::atomic::Ordering::Relaxed,
        )
        .is_ok()
}

/// `i` masked to below `N` (a power of two) in a way the verifier sees. The compiler drops
/// a mask it can prove redundant and may check a bound on one register copy while indexing
/// with another; reading the value back through a volatile load hides what it knows, so
/// the mask stays next to the access.
#[inline(always)]
pub fn verifier_bound<const N: usize>(i: usize) -> usize {
    const {
        assert!(N.is_power_of_two());
    }
    unsafe { core::ptr::read_volatile(&i) & (N - 1) }
}

/// A `bpf_loop` callback's return value: 1 stops the loop, 0 goes on. The verifier
/// refuses a callback that does not provably return 0 or 1, and the compiler would compute
/// the value from what it knows a global function returns, which the verifier does not
/// know. Reading the answer back through a volatile load leaves two constants to return.
#[inline(always)]
pub fn loop_stops(stop: bool) -> i64 {
    let stop = u64::from(stop);
    if unsafe { core::ptr::read_volatile(&stop) } != 0 {
        1
    } else {
        0
    }
}

/// Takes a per-CPU scratch slot by bumping its stamp; returns the stamp now held (never
/// 0, and positive as an `i32`).
///
/// BPF LSM programs run with migration, not preemption, disabled. On a preemptible kernel
/// another task can run a program on this CPU while one is preempted, and fill the same
/// per-CPU slot. So whoever fills a slot takes a stamp first, and after using what it
/// wrote there checks with [`stamp_kept`] that the slot is still its own.
///
/// # Safety
/// `stamp` points into a map value, valid for the program's run.
#[inline(always)]
pub unsafe fn stamp_take(stamp: *mut u32) -> u32 {
    let taken = (unsafe { *stamp }.wrapping_add(1) & STAMP_MASK).max(1);
    unsafe { *stamp = taken };
    taken
}

/// Whether the slot still holds the stamp `taken` from [`stamp_take`]: no other task
/// filled it since. Whatever was read from the slot is read before the stamp, not after.
///
/// # Safety
/// As for [`stamp_take`].
#[inline(always)]
pub unsafe fn stamp_kept(stamp: *const u32, taken: u32) -> bool {
    compiler_fence(Ordering::SeqCst);
    (unsafe { core::ptr::read_volatile(stamp) }) == taken
}

/// Stamps stay positive as an `i32` return value.
const STAMP_MASK: u32 = 0x3fff_ffff;

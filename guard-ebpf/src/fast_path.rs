//! The file layer's fast path: almost every file operation touches nothing protected, and
//! this answers that in the hook itself, by direct loads through the hook's BTF-typed
//! arguments and as few lookups as the answer needs. It only ever says "allowed", and
//! only where `rtguard_file_decide` (or `rtguard_name_decide`) would return 0 without
//! reporting anything: nothing protected, or a tree's trusted writer at work in it.
//! Everything else, and whatever it cannot read, goes to the full decision, which decides
//! as before.

use aya_ebpf::{helpers::generated::bpf_get_current_task_btf, macros::map, maps::PerCpuArray};
use guard_common::{
    file::{FILE_UPGRADABLE, TRUST_PACKAGE_MANAGER},
    FileOp, FileProtection, TrustKey,
};

use crate::{
    kernel::{btf_inode_is_dir, btf_inode_key, offset, BtfPtr},
    maps::{NAME_DIRECTORIES, PROTECTED_INODES, PROTECTED_TREES, TREE_DEVICES, TRUSTED_EXES},
    tree_cache::{self, Remembered},
};

/// True when the full decision for `op` on `dentry` is certainly "allowed, nothing to
/// report": the same steps as `find_protection` and `rtguard_file_decide`, stopping where
/// they would allow:
/// - a negative dentry has no identity;
/// - the object itself is not protected (no entry by identity: this covers hard links),
///   and roots no tree (a file, or a directory that is no tree's root);
/// - its filesystem holds no tree root ([`TreelessDevice`]), or
/// - the tree-walk cache remembers its directory as having no tree above that denies
///   `op`, or
/// - remembers the tree above, and the acting task is that tree's trusted writer
///   ([`writes_in_tree`]).
///
/// The cache comes before the device lookup: on a filesystem that holds a tree (the root
/// filesystem, on almost every host) an operation in a remembered directory is answered
/// without it, and a directory on a filesystem without trees is never remembered, so a
/// miss only costs the lookup it replaces. btrfs identities (subvolume devices), a dentry
/// that is its own parent on a filesystem with trees, and anything the cache does not
/// remember go to the full decision.
#[inline(always)]
pub fn surely_unprotected(dentry: BtfPtr, op: FileOp) -> bool {
    if dentry.is_null() {
        return false;
    }
    let inode = dentry.ptr(offset!(dentry_d_inode));
    if inode.is_null() {
        return true;
    }
    let Some(target) = btf_inode_key(inode) else {
        return false;
    };
    if unsafe { PROTECTED_INODES.get(target) }.is_some() {
        return false;
    }
    // Only a directory roots a tree (see `find_protection`): files, the common case,
    // skip the lookup.
    if btf_inode_is_dir(inode) && unsafe { PROTECTED_TREES.get(target) }.is_some() {
        return false;
    }
    let sb = dentry.ptr(offset!(dentry_d_sb));
    if sb.is_null() {
        return false;
    }
    let device = TreelessDevice::of(sb.load(offset!(super_block_s_dev)));
    if device.remembered() {
        return true;
    }
    let parent = dentry.ptr(offset!(dentry_d_parent));
    if parent.is_null() {
        return false;
    }
    if parent != dentry {
        match tree_cache::remembered(parent, op) {
            Remembered::Clear => return true,
            Remembered::Denied(protection) => return writes_in_tree(&protection),
            Remembered::Unknown => {}
        }
    }
    device.looked_up()
}

/// Per CPU, the last filesystem the fast path found holding no tree root (its
/// `TREE_DEVICES` lookup missed), as one word: the policy epoch it was looked up under
/// and the device. A word is written and read whole, so a task that preempts another on
/// the same CPU can only replace it, never tear it.
#[map]
static TREELESS_DEVICE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// A superblock's device, and whether it holds a tree root: from [`TREELESS_DEVICE`] when
/// it was the last one found without, else from `TREE_DEVICES`.
struct TreelessDevice {
    /// `policy epoch << 32 | device`; 0 when the tree-walk cache is off, and then nothing
    /// is remembered.
    word: u64,
    device: u32,
}

impl TreelessDevice {
    /// Reads the policy epoch before any lookup: userspace moves it on after it changes
    /// `TREE_DEVICES`, so an answer looked up under it is current until then, and one
    /// remembered under an older epoch is not used.
    #[inline(always)]
    fn of(device: u32) -> Self {
        let policy = tree_cache::policy_epoch();
        let word = if policy == 0 {
            0
        } else {
            (policy << 32) | u64::from(device)
        };
        Self { word, device }
    }

    /// Whether this CPU last found this device holding no tree, under this policy epoch.
    #[inline(always)]
    fn remembered(&self) -> bool {
        self.word != 0
            && TREELESS_DEVICE
                .get_ptr(0)
                .is_some_and(|slot| unsafe { core::ptr::read_volatile(slot) } == self.word)
    }

    /// `TREE_DEVICES`' answer: true when the device holds no tree root, which is then
    /// remembered.
    #[inline(always)]
    fn looked_up(&self) -> bool {
        if unsafe { TREE_DEVICES.get(self.device) }.is_some() {
            return false;
        }
        if self.word != 0 {
            if let Some(slot) = TREELESS_DEVICE.get_ptr_mut(0) {
                unsafe { core::ptr::write_volatile(slot, self.word) };
            }
        }
        true
    }
}

/// True when the current task runs an executable trusted for the rule of the tree
/// `protection` (remembered above the target, and still denying the operation): the full
/// decision's `Trust::Writer`, which allows without a report. Only the task itself, as
/// the trust walk's first level sees it, and never the package manager on an object it
/// could upgrade (that walk answers `Trust::PackageManager` first, which may report). A
/// command the writer starts is found by the full decision's walk over its ancestors.
#[inline(always)]
fn writes_in_tree(protection: &FileProtection) -> bool {
    // The task as the verifier types it, so each step below is one load.
    let task = BtfPtr::from_btf(unsafe { bpf_get_current_task_btf() }.cast());
    if task.is_null() {
        return false;
    }
    let mm = task.ptr(offset!(task_mm));
    if mm.is_null() {
        return false;
    }
    let exe_file = mm.ptr(offset!(mm_exe_file));
    if exe_file.is_null() {
        return false;
    }
    let Some(exe) = btf_inode_key(exe_file.ptr(offset!(file_f_inode))) else {
        return false;
    };
    if protection.flags & FILE_UPGRADABLE != 0
        && unsafe { TRUSTED_EXES.get(TrustKey::new(exe, TRUST_PACKAGE_MANAGER)) }.is_some()
    {
        return false;
    }
    unsafe { TRUSTED_EXES.get(TrustKey::new(exe, protection.rule_id)) }.is_some()
}

/// True when `rmdir` of `dentry` cannot remove anything: it is not a directory, so the
/// kernel answers ENOTDIR after the hook. This is not the full decision's answer, which
/// would refuse a protected file: it is a rule of its own, checked first. Refusing with
/// EPERM would hide ENOTDIR, and dpkg, removing a package, tries `rmdir` on each path
/// first and takes EPERM for "a mount point": it warns, leaves the file, records the
/// package as removed, and never tries the `unlink` the file layer would refuse.
#[inline(always)]
pub fn rmdir_cannot_remove(dentry: BtfPtr) -> bool {
    !dentry.is_null() && !tree_cache::is_dir(dentry)
}

/// True when creating `dentry`'s name is certainly allowed: its directory holds no
/// protected names (`rtguard_name_decide`'s first lookup).
#[inline(always)]
pub fn name_unprotected(dentry: BtfPtr) -> bool {
    if dentry.is_null() {
        return false;
    }
    let parent = dentry.ptr(offset!(dentry_d_parent));
    if parent.is_null() {
        return false;
    }
    let dir = parent.ptr(offset!(dentry_d_inode));
    if dir.is_null() {
        return true;
    }
    match btf_inode_key(dir) {
        Some(dir) => unsafe { NAME_DIRECTORIES.get(dir) }.is_none(),
        None => false,
    }
}

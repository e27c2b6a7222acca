//! The file layer's fast path: almost every file operation touches nothing protected, and
//! this answers that in the hook itself, by direct loads through the hook's BTF-typed
//! arguments and as few lookups as the answer needs. It only ever says "not protected",
//! and only where `rtguard_file_decide` (or `rtguard_name_decide`) would return 0 without
//! reporting anything; everything else, and whatever it cannot read, goes to the full
//! decision, which decides as before.

use guard_common::FileOp;

use crate::{
    kernel::{btf_inode_key, offset, BtfPtr},
    maps::{NAME_DIRECTORIES, PROTECTED_INODES, PROTECTED_TREES, TREE_DEVICES},
    tree_cache,
};

/// True when the full decision for `op` on `dentry` is certainly "allowed, nothing to
/// report": the same steps as `find_protection`, in its order, stopping where it would
/// allow:
/// - a negative dentry has no identity;
/// - the object itself is not protected (no entry by identity: this covers hard links);
/// - its filesystem holds no tree root, or it roots no tree itself and the tree-walk cache
///   remembers its directory as having no tree above that denies `op`.
///
/// btrfs identities (subvolume devices), a dentry that is its own parent and anything the
/// cache does not remember go to the full decision.
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
    let sb = dentry.ptr(offset!(dentry_d_sb));
    if sb.is_null() {
        return false;
    }
    let sb_dev: u32 = sb.load(offset!(super_block_s_dev));
    if unsafe { TREE_DEVICES.get(sb_dev) }.is_none() {
        return true;
    }
    if unsafe { PROTECTED_TREES.get(target) }.is_some() {
        return false;
    }
    let parent = dentry.ptr(offset!(dentry_d_parent));
    if parent.is_null() || parent == dentry {
        return false;
    }
    tree_cache::remembers_clear(parent, op)
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

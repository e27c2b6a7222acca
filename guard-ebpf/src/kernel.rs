//! Typed reads of kernel structs, at offsets the loader resolved from the running kernel's BTF.
//!
//! Every read goes through `bpf_probe_read_kernel`: the programs hold plain pointers, not
//! BTF-typed ones, because rustc emits no CO-RE relocations.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use core::ffi::c_void;
use guard_common::InodeKey;

use crate::maps::offsets;

#[inline(always)]
unsafe fn read_at<T>(base: *const c_void, offset: u32) -> Option<T> {
    unsafe { bpf_probe_read_kernel(base.cast::<u8>().add(offset as usize).cast::<T>()).ok() }
}

/// Identity of the inode behind a dentry, or `None` for a negative dentry or a failed read.
#[inline(always)]
pub fn dentry_inode_key(dentry: *const c_void) -> Option<InodeKey> {
    let off = offsets();
    if !off.is_resolved() || dentry.is_null() {
        return None;
    }
    unsafe {
        let inode: *const c_void = read_at(dentry, off.dentry_d_inode)?;
        if inode.is_null() {
            return None;
        }
        // i_ino is `unsigned long`: 64 bits on every 64-bit architecture we load on.
        let ino: u64 = read_at(inode, off.inode_i_ino)?;
        let sb: *const c_void = read_at(inode, off.inode_i_sb)?;
        if sb.is_null() {
            return None;
        }
        let dev: u32 = read_at(sb, off.super_block_s_dev)?;
        Some(InodeKey::new(dev, ino))
    }
}

//! Byte offsets of the kernel struct fields the programs read.
//!
//! Rust eBPF programs get no CO-RE relocations, so these are resolved by userspace from the
//! running kernel's BTF (`/sys/kernel/btf/vmlinux`) and written into the program as a
//! read-only global before load. Nothing here is ever compiled in from one kernel.

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `struct dentry` → `d_inode`
    pub dentry_d_inode: u32,
    /// `struct inode` → `i_ino`
    pub inode_i_ino: u32,
    /// `struct inode` → `i_sb`
    pub inode_i_sb: u32,
    /// `struct super_block` → `s_dev`
    pub super_block_s_dev: u32,
}

impl KernelOffsets {
    /// True once the loader has filled the block. A zero `i_sb` offset cannot be right
    /// (`i_mode` comes first in `struct inode`), so the programs refuse to act on it.
    pub const fn is_resolved(&self) -> bool {
        self.inode_i_sb != 0 && self.super_block_s_dev != 0
    }
}

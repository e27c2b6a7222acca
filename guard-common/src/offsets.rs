//! Byte offsets of the kernel struct fields the programs read, and hook arities that
//! changed between kernel versions.
//!
//! Rust eBPF programs get no CO-RE relocations, so these are resolved by userspace from the
//! running kernel's BTF (`/sys/kernel/btf/vmlinux`) and written into the program as a
//! read-only global before load. Nothing here is ever compiled in from one kernel.

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub dentry_d_inode: u32,
    pub dentry_d_parent: u32,
    /// `struct dentry` → `d_name` (a `struct qstr`).
    pub dentry_d_name: u32,
    /// `struct qstr` → `name`.
    pub qstr_name: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    /// `struct inode` → `i_mode` (file type and permission bits).
    pub inode_i_mode: u32,
    /// `struct inode` → `i_generation`: set afresh each time an inode number is reused
    /// (randomly on ext4, xfs and tmpfs; btrfs uses the creating transaction's id).
    pub inode_i_generation: u32,
    pub super_block_s_dev: u32,
    /// `struct super_block` → `s_magic`: which filesystem it is. On btrfs the identity
    /// `stat(2)` reports is the subvolume's, not the superblock's (see `FsLayout`).
    pub super_block_s_magic: u32,
    /// `struct dentry` → `d_sb`, and `struct super_block` → `s_root`: a dentry that is
    /// its own parent is the filesystem's root only if it is `d_sb->s_root`; otherwise it
    /// is disconnected (found by file handle, not yet linked to its parent).
    pub dentry_d_sb: u32,
    pub super_block_s_root: u32,
    /// `struct path` → `dentry`.
    pub path_dentry: u32,
    pub file_f_path: u32,
    pub file_f_inode: u32,
    pub file_f_mode: u32,
    pub file_f_flags: u32,
    /// `struct iattr` → `ia_valid`.
    pub iattr_ia_valid: u32,
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_mm: u32,
    /// `struct task_struct` → `comm`.
    pub task_comm: u32,
    pub mm_exe_file: u32,
    /// `struct mm_struct` → `arg_start` / `arg_end`: the process's argv strings in its
    /// own memory (what /proc/PID/cmdline shows).
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `struct linux_binprm` → `file`: the file being executed.
    pub linux_binprm_file: u32,
    /// `struct linux_binprm` → `filename`: the path as execve was given it.
    pub linux_binprm_filename: u32,
    /// Parameters of the `inode_setattr` hook: 2 before Linux 6.3, 3 after it gained
    /// a `struct mnt_idmap *` first. The dentry is the one before the last.
    pub inode_setattr_args: u32,
    /// `struct renamedata` → `old_dentry` / `new_dentry`: the argument of `vfs_rename`
    /// (Linux 5.12 and later). Zero when the kernel has no such struct; the tree-walk
    /// cache then stays off.
    pub renamedata_old_dentry: u32,
    pub renamedata_new_dentry: u32,
}

impl KernelOffsets {
    /// True once the loader has filled the block. A zero `i_sb` offset cannot be right
    /// (`i_mode` comes first in `struct inode`), so the programs refuse to act on it.
    pub const fn is_resolved(&self) -> bool {
        self.inode_i_sb != 0 && self.super_block_s_dev != 0 && self.inode_setattr_args != 0
    }
}

//! What the kernel needs to compute a file's identity the way `stat(2)` reports it on
//! filesystems whose `st_dev` is not the superblock's `s_dev`.
//!
//! On btrfs, `stat(2)` reports the *subvolume's* anonymous device
//! (`BTRFS_I(inode)->root->anon_dev`, see `btrfs_getattr`), and inode numbers restart in
//! every subvolume (each subvolume's root is inode 256). The kernel programs must use the
//! same (dev, ino) as userspace, or nothing on a subvolume matches and, worse, files of
//! different subvolumes share a key. The struct offsets for that live in the btrfs
//! module's BTF (`/sys/kernel/btf/btrfs`), which exists only once the module is loaded,
//! possibly long after the programs were. So they cannot be a load-time global like
//! [`KernelOffsets`](crate::KernelOffsets): userspace writes them into a one-entry array
//! map ([`FS_LAYOUT`](crate::names::FS_LAYOUT)) whenever it finds them.

/// `BTRFS_SUPER_MAGIC` in `super_block.s_magic` (include/uapi/linux/magic.h).
pub const BTRFS_SUPER_MAGIC: u64 = 0x9123_683e;

/// Offsets into the btrfs module's structs, read from its BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsLayout {
    /// 1 once the offsets below are filled; 0 while the btrfs module's BTF has not been
    /// read (the module is not loaded, so no inode is on btrfs yet). A `u32`, not a
    /// `bool`, so both sides agree on every byte.
    pub btrfs_resolved: u32,
    /// `struct btrfs_inode` → `vfs_inode`: the VFS inode is embedded in the btrfs one
    /// (`BTRFS_I()` is a `container_of`).
    pub btrfs_inode_vfs_inode: u32,
    /// `struct btrfs_inode` → `root`: the subvolume the inode belongs to.
    pub btrfs_inode_root: u32,
    /// `struct btrfs_root` → `anon_dev`: the subvolume's device, what `stat(2)` reports.
    pub btrfs_root_anon_dev: u32,
}

impl FsLayout {
    pub const fn btrfs(vfs_inode: u32, root: u32, anon_dev: u32) -> Self {
        Self {
            btrfs_resolved: 1,
            btrfs_inode_vfs_inode: vfs_inode,
            btrfs_inode_root: root,
            btrfs_root_anon_dev: anon_dev,
        }
    }

    pub const fn btrfs_is_resolved(&self) -> bool {
        self.btrfs_resolved != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<FsLayout>(), 16);
        assert!(!FsLayout::default().btrfs_is_resolved());
        assert!(FsLayout::btrfs(8, 0, 16).btrfs_is_resolved());
    }
}

//! Filesystem modules' struct offsets, for identities that `stat(2)` does not take from the
//! superblock (see `guard_common::fs_layout`).
//!
//! Debian builds btrfs as a module, and its BTF (`/sys/kernel/btf/btrfs`, split BTF on
//! top of vmlinux's) appears only once the module is loaded: at boot when the root is
//! btrfs, or much later when a data disk is first mounted. So the offsets go into a map
//! the programs read at every lookup, written at load and again by
//! [`Guard::refresh_fs_layout`] whenever the daemon resolves its policy.

use std::path::Path;

use aya::{
    maps::{Array, MapData},
    Ebpf,
};
use btf_rs::Btf;
use guard_common::{names, FsLayout};
use tracing::info;

use super::{
    array_mut, map_err,
    offsets::{self, member_offset, IndexedBtf},
    Guard, LoadError, OffsetError,
};

/// Where the kernel exposes the btrfs module's BTF while the module is loaded.
pub const BTRFS_BTF: &str = "/sys/kernel/btf/btrfs";

/// The btrfs offsets from the module's split BTF at `split` on top of the kernel's
/// `base`; `None` when the module is not loaded (no such file).
pub fn btrfs_layout(base: &Btf, split: &Path) -> Result<Option<FsLayout>, OffsetError> {
    if !split.exists() {
        return Ok(None);
    }
    let btf = Btf::from_split_file(split, base).map_err(|source| OffsetError::Read {
        path: split.to_owned(),
        source,
    })?;
    let btf = IndexedBtf::names(btf, &["btrfs_inode", "btrfs_root"])?;
    Ok(Some(FsLayout::btrfs(
        member_offset(&btf, "btrfs_inode", "vfs_inode")?,
        member_offset(&btf, "btrfs_inode", "root")?,
        member_offset(&btf, "btrfs_root", "anon_dev")?,
    )))
}

impl Guard {
    /// Makes sure the programs know the btrfs layout if the btrfs module is loaded, so
    /// that a file on a btrfs subvolume has the identity `stat(2)` gave the resolver.
    /// Idempotent, and cheap unless the module has just appeared: one map read once the
    /// layout is in, one `stat` of [`BTRFS_BTF`] while the module is not loaded. Returns
    /// whether the layout is in the map.
    ///
    /// Call it before installing tables resolved from paths that may be on btrfs: the
    /// module is loaded by then, since they were stat'ed.
    pub fn refresh_fs_layout(&mut self) -> Result<bool, LoadError> {
        if self.fs_layout()?.btrfs_is_resolved() {
            return Ok(true);
        }
        let split = Path::new(BTRFS_BTF);
        if !split.exists() {
            return Ok(false);
        }
        let base = offsets::mapped(Path::new(super::KERNEL_BTF), None)?;
        match btrfs_layout(&base, split)? {
            Some(layout) => {
                self.set_fs_layout(layout)?;
                Ok(true)
            }
            // Unloaded between the two looks.
            None => Ok(false),
        }
    }

    /// What the programs' layout map holds.
    pub fn fs_layout(&self) -> Result<FsLayout, LoadError> {
        let map = self
            .ebpf
            .map(names::FS_LAYOUT)
            .ok_or(LoadError::MissingMap(names::FS_LAYOUT))?;
        let layouts: Array<&MapData, FsLayout> =
            Array::try_from(map).map_err(map_err(names::FS_LAYOUT))?;
        layouts.get(&0, 0).map_err(map_err(names::FS_LAYOUT))
    }

    fn set_fs_layout(&mut self, layout: FsLayout) -> Result<(), LoadError> {
        write(&mut self.ebpf, layout)
    }
}

/// Writes the layout into the programs' map.
pub(super) fn write(ebpf: &mut Ebpf, layout: FsLayout) -> Result<(), LoadError> {
    let mut layouts: Array<&mut MapData, FsLayout> = array_mut(ebpf, names::FS_LAYOUT)?;
    layouts
        .set(0, layout, 0)
        .map_err(map_err(names::FS_LAYOUT))?;
    info!(
        ?layout,
        "btrfs module layout read: files on btrfs are known by their subvolume's device, as stat(2) reports them"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_layout_while_the_module_is_not_loaded() {
        let Ok(base) = offsets::mapped(Path::new(super::super::KERNEL_BTF), None) else {
            eprintln!("skipping: no kernel BTF on this host");
            return;
        };
        let missing = Path::new("/nonexistent/btf/btrfs");
        assert_eq!(btrfs_layout(&base, missing).unwrap(), None);
    }

    #[test]
    fn reads_the_layout_from_the_loaded_module() {
        let (Ok(base), true) = (
            offsets::mapped(Path::new(super::super::KERNEL_BTF), None),
            Path::new(BTRFS_BTF).exists(),
        ) else {
            eprintln!("skipping: the btrfs module is not loaded on this host");
            return;
        };
        let layout = btrfs_layout(&base, Path::new(BTRFS_BTF)).unwrap().unwrap();
        assert!(layout.btrfs_is_resolved());
        // The VFS inode is embedded after btrfs's own fields; the pointers are aligned.
        assert!(layout.btrfs_inode_vfs_inode > 0);
        assert_eq!(layout.btrfs_inode_root % 8, 0);
        assert_eq!(layout.btrfs_root_anon_dev % 4, 0);
    }
}

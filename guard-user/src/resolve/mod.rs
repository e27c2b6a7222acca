//! Resolution: turns what the operator names (packages, paths, trees, units, executables)
//! into the identities the kernel matches on. A protected object is its (dev, ino), never
//! its path. Resolution is a pure function of a root directory ([`ResolveOptions::root`]),
//! so it runs the same against `/` and against a fixture tree.

pub mod dpkg;
pub mod root;
pub mod rpm;
pub mod ruleset;
pub mod runtime;
pub mod units;

use std::{
    io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use guard_common::InodeKey;

use crate::host::mount_table;

pub use root::Root;
pub use rpm::RpmTool;
pub use ruleset::{
    resolve, EditableBaseline, ExcludedChild, ExeClass, ItemReport, ItemState, Origin, PolicyInfo,
    ResolveOptions, ResolvedExe, ResolvedObject, ResolvedTree, RuleInfo, RuleReport, RuleSet,
    TrustedCaller, Warning,
};

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot protect {path}: {source}")]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot protect {} as a tree: not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error("cannot use {} as the root: {source}", path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the {what} database: {source}")]
    PackageDb {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// A resolved object: where the operator named it and what the kernel will see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectedObject {
    pub path: PathBuf,
    pub key: InodeKey,
}

/// Resolves a path to its kernel identity. Symlinks are followed: protecting a link
/// protects what it points to, which is what an operator naming `/usr/bin/x` means.
pub fn protected_object(path: &Path) -> Result<ProtectedObject, ResolveError> {
    let meta = std::fs::metadata(path).map_err(|source| ResolveError::Stat {
        path: path.to_owned(),
        source,
    })?;
    Ok(ProtectedObject {
        path: path.to_owned(),
        key: inode_key(&meta),
    })
}

/// The kernel's view of a stat result. `st_dev` uses the userspace encoding; the kernel's
/// `s_dev` does not, so split it into major and minor and re-encode. The kernel programs
/// compute the same device, including btrfs's per-subvolume one.
pub fn inode_key(meta: &std::fs::Metadata) -> InodeKey {
    identity(meta.dev(), meta.ino())
}

/// [`inode_key`] of an `st_dev` and an inode number.
pub fn identity(st_dev: u64, ino: u64) -> InodeKey {
    InodeKey::from_stat(libc::major(st_dev), libc::minor(st_dev), ino)
}

/// The `s_dev` of the superblock holding `path` (symlinks followed), in the kernel's
/// encoding. That is the device `stat(2)` reports on most filesystems, but not on btrfs,
/// where stat gives the subvolume's own device. The mount table's `major:minor` is the
/// superblock's (`show_mountinfo`), so the mount is found by the id statx(2) reports.
pub fn superblock_dev(path: &Path) -> Result<u32, ResolveError> {
    let stat_err = |source| ResolveError::Stat {
        path: path.to_owned(),
        source,
    };
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| stat_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    // SAFETY: statx only writes the struct it is given; all-zero is a valid statx.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            0,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if rc != 0 {
        return Err(stat_err(io::Error::last_os_error()));
    }
    let stat_dev = guard_common::inode::kernel_dev(stx.stx_dev_major, stx.stx_dev_minor);
    // Kernels before 5.8 report no mount id; their btrfs trees go by stat's device.
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Ok(stat_dev);
    }
    let table =
        std::fs::read_to_string(mount_table::MOUNTINFO).map_err(|source| ResolveError::Stat {
            path: PathBuf::from(mount_table::MOUNTINFO),
            source,
        })?;
    Ok(mount_table::parse(&table)
        .into_iter()
        .find(|m| m.id == stx.stx_mnt_id)
        .map_or(stat_dev, |m| m.dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_to_the_same_key_through_a_symlink_and_a_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("containerd");
        std::fs::write(&file, b"binary").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let hard = dir.path().join("hard");
        std::fs::hard_link(&file, &hard).unwrap();

        let direct = protected_object(&file).unwrap().key;
        assert_eq!(protected_object(&link).unwrap().key, direct);
        assert_eq!(protected_object(&hard).unwrap().key, direct);
        assert_ne!(direct.ino, 0);
    }

    #[test]
    fn outside_btrfs_the_superblock_device_is_the_stat_device() {
        let dir = tempfile::tempdir().unwrap();
        let on_btrfs = nix::sys::statfs::statfs(dir.path())
            .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::BTRFS_SUPER_MAGIC);
        let key = protected_object(dir.path()).unwrap().key;
        if !on_btrfs {
            assert_eq!(superblock_dev(dir.path()).unwrap(), key.dev);
        }
        let err = superblock_dev(Path::new("/nonexistent/rtguard-test")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot protect /nonexistent/rtguard-test: "));
    }

    #[test]
    fn missing_path_names_the_path() {
        let err = protected_object(Path::new("/nonexistent/rtguard-test")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot protect /nonexistent/rtguard-test: "));
    }
}

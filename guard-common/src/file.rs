//! The file layer's vocabulary: operations, what a map entry protects against, and who is
//! trusted to act anyway.

use num_enum::TryFromPrimitive;
use strum::IntoStaticStr;

/// A destructive file operation. Each is one bit, so a protection lists the operations it
/// denies as a mask. The strings are the audit log's.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TryFromPrimitive, IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum FileOp {
    Unlink = 1 << 0,
    Rmdir = 1 << 1,
    /// Renaming the object away, or renaming something over it from another directory
    /// (or swapping it with `RENAME_EXCHANGE`).
    Rename = 1 << 2,
    Truncate = 1 << 3,
    /// An open for writing or with O_TRUNC.
    OpenWrite = 1 << 4,
    Chmod = 1 << 5,
    Chown = 1 << 6,
    /// A mode, owner or size change seen by `inode_setattr` (the fallback hooks).
    Setattr = 1 << 7,
    /// Something renamed over the object from the same directory: an atomic replacement,
    /// the way `sed -i`, editors and configuration management write a file.
    Replace = 1 << 8,
    /// A filesystem mounted, bound or moved onto the object (`mount --bind /tmp/empty
    /// /usr/bin/containerd`, `mount -t tmpfs none /etc/containerd`): what the runtime
    /// sees there is replaced without a byte of it touched.
    Mount = 1 << 9,
    /// The filesystem the object is the root of unmounted (`umount -l /sys/fs/bpf`):
    /// refused on the BPF filesystem only, where unmounting drops the pinned programs once
    /// the daemon is gone (see guard-ebpf's `sb_umount`).
    Unmount = 1 << 10,
    /// A POSIX ACL written (`setfacl`, `setxattr(system.posix_acl_access)`): it can take
    /// every permission off a binary, like `chmod 000`.
    SetAcl = 1 << 11,
    /// Inode flags changed (`chattr +i`: `FS_IOC_SETFLAGS`, `FS_IOC_FSSETXATTR`): an
    /// immutable or append-only file makes the next upgrade of it fail.
    SetFlags = 1 << 12,
    /// A name created in a directory that protects it (a symlink, file, directory, hard
    /// link or rename target): `ln -s /dev/null /etc/systemd/system/containerd.service`
    /// masks the unit without `systemctl mask`.
    Create = 1 << 13,
}

impl FileOp {
    pub const ALL: [FileOp; 14] = [
        FileOp::Unlink,
        FileOp::Rmdir,
        FileOp::Rename,
        FileOp::Truncate,
        FileOp::OpenWrite,
        FileOp::Chmod,
        FileOp::Chown,
        FileOp::Setattr,
        FileOp::Replace,
        FileOp::Mount,
        FileOp::Unmount,
        FileOp::SetAcl,
        FileOp::SetFlags,
        FileOp::Create,
    ];

    pub const fn bit(self) -> u32 {
        self as u32
    }

    pub fn from_u32(raw: u32) -> Option<Self> {
        Self::try_from(raw).ok()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

/// Every operation on an existing object: what a protected file or directory is guarded
/// against. ([`FileOp::Create`] is about a name that does not exist yet.)
pub const OPS_ALL: u32 = 0x1fff;
/// What an ancestor directory of a protected object is guarded against: moving or
/// removing it, or mounting over it, would take the object with it. Creating and
/// removing other entries in it stays allowed.
pub const OPS_ANCESTOR: u32 =
    FileOp::Rename as u32 | FileOp::Rmdir as u32 | FileOp::Mount as u32 | FileOp::Unmount as u32;
/// What removes or replaces names: the `rm -rf` and `mv` of an uninstaller, and a mount
/// over the name.
pub const OPS_REMOVE: u32 = FileOp::Unlink as u32
    | FileOp::Rmdir as u32
    | FileOp::Rename as u32
    | FileOp::Mount as u32
    | FileOp::Unmount as u32;

/// Set in [`FileProtection::flags`] when the package manager may replace the object
/// (a package group with `upgrade = "allow"`, or an open window). The package manager's
/// own process may then rename a new file over it, and, once it has done that to one of
/// the package's objects, remove or rename the package's others (the files an upgrade
/// drops, its backups). Its maintainer scripts and hooks get nothing from this.
pub const FILE_UPGRADABLE: u32 = 1 << 0;

/// Set with [`FILE_UPGRADABLE`] when the package manager may also remove the object
/// outright, with no upgrade of its package under way: a maintenance window that allows
/// removal, or a configuration tree's entry (dpkg's `*.dpkg-*` bookkeeping there).
pub const FILE_REMOVABLE: u32 = 1 << 3;

/// Set on dpkg's record of a package (`/var/lib/dpkg/info/<package>.*`). dpkg rewrites
/// these when it removes a package too, so replacing one is not an upgrade of the
/// package, as replacing one of its files is.
pub const FILE_PACKAGE_RECORD: u32 = 1 << 4;

/// [`FileProtection::package`] of an object no package owns.
pub const NO_PACKAGE: u32 = 0;

/// The id of the package named `name` in [`FileProtection::package`]: a hash, so both
/// sides and every reload agree on it with no table. Never [`NO_PACKAGE`].
pub const fn package_id(name: &[u8]) -> u32 {
    let hash = crate::hash::fnv1a(name);
    let id = (hash ^ (hash >> 32)) as u32;
    if id == NO_PACKAGE {
        1
    } else {
        id
    }
}

/// A package the package manager's process is upgrading: it has renamed a new file over
/// one of the package's protected objects ([`FileOp::Replace`]), so removing the others is
/// the upgrade dropping them. Kept in an LRU map the kernel fills; a process id is not
/// reused before thousands of others have taken its place.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UpgradeKey {
    /// The package manager's process (thread group) id.
    pub tgid: u32,
    /// [`package_id`] of the package.
    pub package: u32,
}

/// Capacity of the upgrades-under-way map.
pub const MAX_UPGRADES: u32 = 1_024;

/// What changes a configuration file's contents: on an object marked
/// [`FILE_EDITABLE`] these pass and are reported as edits.
pub const OPS_EDIT: u32 = FileOp::OpenWrite as u32
    | FileOp::Truncate as u32
    | FileOp::Replace as u32
    | FileOp::Setattr as u32;

/// Set on a configuration file (a protected package's conffile, or a file present in an
/// `allow_writes` tree when the policy was resolved): it is guarded against [`OPS_REMOVE`]
/// only, and each of [`OPS_EDIT`] passes as an edit. After a same-directory replacement
/// the kernel gives the file's protection to the inode that replaced it, so the edited
/// file is as protected as the one before.
pub const FILE_EDITABLE: u32 = 1 << 2;

/// Set on a [`PROTECTED_TREES`](crate::names::PROTECTED_TREES) entry that excludes a
/// subtree from an enclosing tree (container volumes and layers under
/// /var/lib/docker): the parent walk stops there, so nothing below it is protected.
pub const FILE_TREE_EXCLUDED: u32 = 1 << 1;

/// Longest name (in bytes, without the NUL) of a child a tree excludes by name.
pub const EXCLUDED_NAME_LEN: usize = 63;

/// A subtree excluded by its name under a tree root (`/var/lib/docker` + `volumes`), so
/// that the exclusion holds for a directory created after the policy was resolved. The
/// kernel looks it up with the name of the walk's child just below the tree root.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExcludedChildKey {
    pub tree: crate::InodeKey,
    /// The child's name, NUL-padded: the hash map compares every byte.
    pub name: [u8; EXCLUDED_NAME_LEN + 1],
}

impl ExcludedChildKey {
    /// The key for `name` under `tree`; `None` when the name is too long (or empty).
    pub fn new(tree: crate::InodeKey, name: &[u8]) -> Option<Self> {
        if name.is_empty() || name.len() > EXCLUDED_NAME_LEN || name.contains(&0) {
            return None;
        }
        let mut key = Self {
            tree,
            name: [0; EXCLUDED_NAME_LEN + 1],
        };
        key.name[..name.len()].copy_from_slice(name);
        Some(key)
    }
}

/// Capacity of the excluded-children map.
pub const MAX_EXCLUDED_CHILDREN: u32 = 1_024;

/// Capacity of the protected-names map: names that may not be created in a directory
/// (a protected unit's name in /etc/systemd/system and /run/systemd/system), keyed like
/// an excluded child by the directory and the name, valued by the rule id.
pub const MAX_PROTECTED_NAMES: u32 = 256;

/// What a protected inode or tree root is guarded against, and by which rule.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileProtection {
    /// Rule id (see `rule`): carried in events and used to look up the rule's mode.
    pub rule_id: u32,
    /// Mask of [`FileOp`] bits that are denied.
    pub ops: u32,
    /// `FILE_*` bits.
    pub flags: u32,
    /// [`package_id`] of the package that ships the object, or [`NO_PACKAGE`].
    pub package: u32,
}

impl FileProtection {
    pub const fn denies(&self, op: FileOp) -> bool {
        self.ops & op.bit() != 0
    }
}

/// Trust class meaning "the package manager", for [`TrustKey::class`].
pub const TRUST_PACKAGE_MANAGER: u32 = u32::MAX;

/// An executable trusted for one rule (a tree's writers), or for upgrades
/// ([`TRUST_PACKAGE_MANAGER`]). The executable is identified by its (dev, ino).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustKey {
    pub exe_ino: u64,
    pub exe_dev: u32,
    /// A rule id, or [`TRUST_PACKAGE_MANAGER`].
    pub class: u32,
}

impl TrustKey {
    pub const fn new(exe: crate::InodeKey, class: u32) -> Self {
        Self {
            exe_ino: exe.ino,
            exe_dev: exe.dev,
            class,
        }
    }
}

/// How many parent directories the tree check walks up from the target. A tree root
/// deeper above the target than this is not found; at 32 levels that is no real limit.
pub const MAX_TREE_DEPTH: u32 = 32;
/// How many ancestors of the acting task are checked for trust: a shim's container
/// processes and dpkg's maintainer scripts act on behalf of a trusted parent.
pub const MAX_TRUST_ANCESTRY: u32 = 8;

/// Key of the tree-walk cache: a directory by identity (its own, as `stat(2)` reports
/// it: on btrfs, snapshots repeat inode numbers and generations, and only the subvolume's
/// device tells them apart). The inode generation makes a reused inode number a
/// different key, so a directory that is removed and replaced by another (elsewhere)
/// never inherits the old one's entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TreeCacheKey {
    pub ino: u64,
    pub dev: u32,
    pub generation: u32,
}

/// What the tree-walk cache knows about a directory: the operations for which the walk
/// from it up to the filesystem's root found no tree that denies them, and those for
/// which it found `tree`. Valid only while both epochs are what they were when the walk
/// started.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeCacheEntry {
    pub rename_epoch: u64,
    pub policy_epoch: u64,
    /// Mask of [`FileOp`] bits found unprotected.
    pub clear_ops: u32,
    /// Mask of [`FileOp`] bits denied by the tree rooted at `tree`.
    pub denied_ops: u32,
    /// The root of the tree the walk found for `denied_ops`.
    pub tree: crate::InodeKey,
}

/// Slot of [`TREE_EPOCHS`](crate::names::TREE_EPOCHS) the kernel bumps after every
/// rename of a directory: a moved directory may have moved into (or out of) a tree.
pub const TREE_EPOCH_RENAME: u32 = 0;
/// Slot userspace bumps after each change to the tree tables. Zero means the cache is
/// off: userspace turns it on only once the rename watcher is attached.
pub const TREE_EPOCH_POLICY: u32 = 1;
/// Number of epoch slots.
pub const TREE_EPOCH_SLOTS: u32 = 2;
/// Directories the tree-walk cache remembers (least recently used ones are evicted).
pub const MAX_TREE_CACHE: u32 = 4_096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_by_bit_and_by_name() {
        let mut all = 0;
        for op in FileOp::ALL {
            assert_eq!(FileOp::from_u32(op.bit()), Some(op));
            assert_eq!(FileOp::from_name(op.as_str()), Some(op));
            all |= op.bit();
        }
        // Creating a name is no operation on an existing object.
        assert_eq!(all, OPS_ALL | FileOp::Create.bit());
        assert_eq!(FileOp::from_u32(0x4000), None);
    }

    #[test]
    fn ops_keep_their_audit_log_words() {
        let words = [
            "unlink",
            "rmdir",
            "rename",
            "truncate",
            "open-write",
            "chmod",
            "chown",
            "setattr",
            "replace",
            "mount",
            "unmount",
            "set-acl",
            "set-flags",
            "create",
        ];
        assert_eq!(FileOp::ALL.map(FileOp::as_str), words);
    }

    #[test]
    fn shared_types_have_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<FileProtection>(), 16);
        assert_eq!(core::mem::size_of::<TrustKey>(), 16);
        assert_eq!(core::mem::size_of::<TreeCacheKey>(), 16);
        assert_eq!(core::mem::size_of::<TreeCacheEntry>(), 40);
        assert_eq!(core::mem::size_of::<ExcludedChildKey>(), 80);
        assert_eq!(core::mem::size_of::<UpgradeKey>(), 8);
    }

    #[test]
    fn package_ids_are_stable_and_never_no_package() {
        assert_eq!(package_id(b"containerd"), package_id(b"containerd"));
        assert_ne!(package_id(b"containerd"), package_id(b"runc"));
        assert_ne!(package_id(b""), NO_PACKAGE);
    }

    #[test]
    fn excluded_child_names_are_nul_padded_and_bounded() {
        let tree = crate::InodeKey::new(1, 2);
        let key = ExcludedChildKey::new(tree, b"volumes").unwrap();
        assert_eq!(&key.name[..8], b"volumes\0");
        assert!(key.name[7..].iter().all(|&b| b == 0));
        assert!(ExcludedChildKey::new(tree, &[b'x'; EXCLUDED_NAME_LEN]).is_some());
        assert!(ExcludedChildKey::new(tree, &[b'x'; EXCLUDED_NAME_LEN + 1]).is_none());
        assert!(ExcludedChildKey::new(tree, b"").is_none());
    }
}

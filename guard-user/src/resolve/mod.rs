//! Resolution: turns what the operator names (packages, paths, trees, units, executables)
//! into the identities the kernel matches on. A protected object is its (dev, ino), never
//! its path. Resolution is a pure function of a root directory ([`ResolveOptions::root`]),
//! so it runs the same against `/` and against a fixture tree.

pub mod dpkg;
pub mod root;
pub mod rpm;
pub mod ruleset;
pub mod units;

use std::{
    io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use guard_common::InodeKey;

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
    let dev = meta.dev();
    InodeKey::from_stat(libc::major(dev), libc::minor(dev), meta.ino())
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
    fn missing_path_names_the_path() {
        let err = protected_object(Path::new("/nonexistent/rtguard-test")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot protect /nonexistent/rtguard-test: "));
    }
}

//! The kernel filesystems the programs need: tracefs (to attach degraded mode's
//! tracepoints), bpffs (to pin links) and securityfs (the active LSM list, which picks
//! the enforcement mechanism). systemd mounts them at boot; minimal inits and some cloud
//! images do not. Where one is missing, rtguard mounts it where systemd would, and says so.

use std::{
    io,
    path::{Path, PathBuf},
};

use nix::{
    mount::{mount, MsFlags},
    sys::statfs::{statfs, BPF_FS_MAGIC},
};
use tracing::info;

/// Where tracefs is mounted, in the order the kernel and systemd use them.
pub const TRACEFS: &[&str] = &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
/// Where systemd mounts the BPF filesystem.
pub const BPFFS: &str = "/sys/fs/bpf";
/// Where systemd mounts securityfs.
pub const SECURITYFS: &str = "/sys/kernel/security";

#[derive(Debug, thiserror::Error)]
#[error("{what} is not mounted and mounting it at {target} failed: {source}")]
pub struct MountError {
    pub what: &'static str,
    pub target: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The tracefs mount, mounting it at /sys/kernel/tracing if none is mounted.
pub fn tracefs() -> Result<PathBuf, MountError> {
    for dir in TRACEFS {
        if Path::new(dir).join("events").is_dir() {
            return Ok(PathBuf::from(dir));
        }
    }
    let target = Path::new(TRACEFS[0]);
    mount_fs("tracefs", "tracefs", target)?;
    Ok(target.to_owned())
}

/// Makes sure `/sys/fs/bpf` is a BPF filesystem, mounting one if it is not.
pub fn bpffs() -> Result<(), MountError> {
    let target = Path::new(BPFFS);
    if statfs(target).is_ok_and(|fs| fs.filesystem_type() == BPF_FS_MAGIC) {
        return Ok(());
    }
    mount_fs("bpffs", "bpf", target)
}

/// Makes sure securityfs is mounted, mounting it if `lsm` (the active LSM list in it)
/// is missing. A kernel without securityfs is not an error here: the list stays
/// unreadable, and the caller decides without it.
pub fn securityfs() -> Result<(), MountError> {
    let target = Path::new(SECURITYFS);
    if target.join("lsm").exists() {
        return Ok(());
    }
    mount_fs("securityfs", "securityfs", target)
}

fn mount_fs(what: &'static str, fstype: &str, target: &Path) -> Result<(), MountError> {
    let error = |source: io::Error| MountError {
        what,
        target: target.to_owned(),
        source,
    };
    std::fs::create_dir_all(target).map_err(error)?;
    mount(
        Some(fstype),
        target,
        Some(fstype),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| error(e.into()))?;
    info!("{what} was not mounted: mounted it at {}", target.display());
    Ok(())
}

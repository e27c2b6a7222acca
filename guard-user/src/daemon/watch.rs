//! What the daemon watches on the host besides the kernel's events: the mount table (a
//! filesystem mounted on a protected path puts other inodes there) and the protected
//! configuration files (every edit is kept as a version, `rtguard config`).

use std::{collections::BTreeSet, path::PathBuf};

use guard_common::file::FILE_EDITABLE;
use tokio::io::unix::AsyncFd;
use tracing::warn;

use crate::{
    host::mount_table::{self, Mount, MountTable},
    tables::KernelTables,
};

/// The mounts on protected paths now; empty without a mount watch.
pub(super) fn mounts_on_protected(
    watch: &mut Option<AsyncFd<MountTable>>,
    installed: &KernelTables,
) -> BTreeSet<Mount> {
    let Some(watch) = watch else {
        return BTreeSet::new();
    };
    match watch.get_mut().read() {
        Ok(mounts) => {
            let protected = installed
                .legend
                .paths
                .values()
                .map(PathBuf::as_path)
                .collect();
            mount_table::on_protected(&mounts, &protected)
        }
        Err(e) => {
            warn!("reading {}: {e}", mount_table::MOUNTINFO);
            BTreeSet::new()
        }
    }
}

/// The mount points mounted on or unmounted from between two sets, each once, as
/// "/var/lib/docker (xfs mounted)".
pub(super) fn changed_mount_points(
    before: &BTreeSet<Mount>,
    after: &BTreeSet<Mount>,
) -> Vec<String> {
    let mounted = after
        .difference(before)
        .map(|m| format!("{} ({} mounted)", m.point.display(), m.fstype));
    let unmounted = before
        .difference(after)
        .map(|m| format!("{} ({} unmounted)", m.point.display(), m.fstype));
    mounted.chain(unmounted).collect()
}

/// The configuration files the tables protect: editable regular files, by path.
pub(super) fn editable_files(tables: &KernelTables) -> BTreeSet<PathBuf> {
    tables
        .inodes
        .iter()
        .filter(|(_, p)| p.flags & FILE_EDITABLE != 0)
        .filter_map(|(key, _)| tables.legend.paths.get(key))
        .filter(|path| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(id: u64, point: &str, fstype: &str) -> Mount {
        Mount {
            id,
            dev: 0,
            point: PathBuf::from(point),
            fstype: fstype.to_owned(),
        }
    }

    #[test]
    fn mount_changes_are_named_once_each_with_what_happened() {
        let before = BTreeSet::from([mount(30, "/etc/containerd", "ext4")]);
        let after = BTreeSet::from([
            mount(41, "/var/lib/docker", "xfs"),
            mount(42, "/etc/containerd", "tmpfs"),
        ]);
        assert_eq!(
            changed_mount_points(&before, &after),
            [
                "/var/lib/docker (xfs mounted)",
                "/etc/containerd (tmpfs mounted)",
                "/etc/containerd (ext4 unmounted)"
            ]
        );
        assert!(changed_mount_points(&after, &after).is_empty());
    }
}

//! The cgroups that hold protected processes. `cgroup.kill` kills everything in a cgroup
//! and below it, and `cgroup.freeze` stops it; the kernel refuses both, except from pid 1,
//! for the cgroups in its `PROTECTED_CGROUPS` map. Which cgroups those are changes with no
//! hook of ours (systemd places a service's process before it executes the daemon; a
//! runtime may move itself), so the daemon counts them from `/proc` at a short interval.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use guard_common::{InodeKey, ProcessProtection};
use tracing::warn;

use super::Daemon;
use crate::{
    host::{
        mount_table::{Mount, MountTable},
        proc::Procfs,
    },
    loader::Guard,
    resolve::inode_key,
};

/// How often the census runs: a protected process that moved to another cgroup has that
/// cgroup guarded within this long.
pub const CENSUS_INTERVAL: Duration = Duration::from_secs(2);

/// Where the cgroup v2 hierarchy is mounted in the daemon's mount table.
pub fn cgroup2_root(mounts: &[Mount]) -> Option<PathBuf> {
    mounts
        .iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| m.point.clone())
}

/// The cgroup of every running process whose executable `processes` protects, and each
/// of its ancestors below `root` (the root cgroup has no `cgroup.kill`), by the cgroup
/// directory's identity → the rule of the first such process, and the directory.
pub fn protected_cgroups(
    procfs: &Procfs,
    processes: &BTreeMap<InodeKey, ProcessProtection>,
    root: &Path,
) -> BTreeMap<InodeKey, (u32, PathBuf)> {
    let mut cgroups = BTreeMap::new();
    if processes.is_empty() {
        return cgroups;
    }
    let Ok(entries) = std::fs::read_dir(procfs.root()) else {
        return cgroups;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // Kernel threads and processes that exited meanwhile have no exe.
        let Ok(exe) = std::fs::metadata(entry.path().join("exe")) else {
            continue;
        };
        let Some(protection) = processes.get(&inode_key(&exe)) else {
            continue;
        };
        let Ok(cgroup) = procfs.cgroup(pid) else {
            continue;
        };
        let mut dir = root.join(cgroup.trim_start_matches('/'));
        while dir != root && dir.starts_with(root) {
            if let Ok(meta) = std::fs::metadata(&dir) {
                cgroups
                    .entry(inode_key(&meta))
                    .or_insert_with(|| (protection.rule_id, dir.clone()));
            }
            dir.pop();
        }
    }
    cgroups
}

/// Finds the cgroup v2 root once; `None` (and a warning) on a host without one.
pub fn find_cgroup2_root() -> Option<PathBuf> {
    let root = MountTable::open()
        .and_then(|mut table| table.read())
        .ok()
        .and_then(|mounts| cgroup2_root(&mounts));
    if root.is_none() {
        warn!("no cgroup v2 hierarchy mounted: cgroup.kill and cgroup.freeze are not guarded");
    }
    root
}

impl Daemon {
    /// Brings the kernel's protected cgroups to a census of the running processes.
    pub(super) fn census(&mut self, guard: &mut Guard, root: &Path) {
        let cgroups = protected_cgroups(&Procfs::default(), &guard.installed().processes, root);
        if let Err(e) = guard.protect_cgroups(cgroups) {
            warn!("updating the protected cgroups: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_the_root() {
        let mounts = crate::host::mount_table::parse(
            "25 30 0:22 / /sys rw - sysfs sysfs rw\n\
             27 25 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        );
        assert_eq!(cgroup2_root(&mounts), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(cgroup2_root(&mounts[..1]), None);
    }

    #[test]
    fn a_protected_process_guards_its_cgroup_and_ancestors_below_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cgroup");
        let service = root.join("system.slice/containerd.service");
        std::fs::create_dir_all(&service).unwrap();
        std::fs::create_dir_all(root.join("user.slice")).unwrap();
        let proc_root = dir.path().join("proc");
        let exe = dir.path().join("containerd");
        std::fs::write(&exe, b"").unwrap();
        for (pid, target, cgroup) in [
            ("70", &exe, "/system.slice/containerd.service"),
            ("71", &dir.path().join("proc"), "/user.slice"),
        ] {
            let p = proc_root.join(pid);
            std::fs::create_dir_all(&p).unwrap();
            std::os::unix::fs::symlink(target, p.join("exe")).unwrap();
            std::fs::write(p.join("cgroup"), format!("0::{cgroup}\n")).unwrap();
        }
        let key = |path: &Path| inode_key(&std::fs::metadata(path).unwrap());
        let processes = BTreeMap::from([(
            key(&exe),
            ProcessProtection {
                rule_id: 4,
                ..ProcessProtection::default()
            },
        )]);
        let cgroups = protected_cgroups(&Procfs::new(&proc_root), &processes, &root);
        assert_eq!(
            cgroups,
            BTreeMap::from([
                (key(&service), (4, service.clone())),
                (
                    key(&root.join("system.slice")),
                    (4, root.join("system.slice"))
                ),
            ])
        );
    }
}

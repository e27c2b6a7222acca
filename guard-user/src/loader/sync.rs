//! Keeping the maps in step with the kernel tables: an install adds and updates what is
//! new before it removes what is gone, so a protected object is never unprotected in
//! between. The self-test's canaries and the identity probe go through here too.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, HashMap, MapData, RingBuf},
    Ebpf,
};
use guard_common::{
    exec::{BinaryEntry, ClassEntry, CommandConfig, ObjectEntry, ObjectKey, WordEntry, WordKey},
    file::{ExcludedChildKey, FILE_EDITABLE, FILE_UPGRADABLE, TREE_EPOCH_POLICY},
    names,
    rule::RuleEntry,
    sysctl::SysctlKey,
    FileProtection, IdentityProbe, InodeKey, ProcessProtection, TrustKey,
};
use tracing::{debug, warn};

use crate::{
    resolve::inode_key,
    tables::{ExecTables, KernelTables},
};

use super::{Guard, LoadError, TreeCache};

impl Guard {
    /// Brings the maps to `tables`: adds and updates what is new, then removes what is
    /// gone, so a protected object is never unprotected in between. Returns how many
    /// objects it left out because they were replaced at their path after the tables were
    /// resolved (see `forget_replaced`): if any, the tables need resolving again.
    pub fn install(&mut self, mut tables: KernelTables) -> Result<usize, LoadError> {
        // The tables' keys came from stat(2): if btrfs appeared since the last look,
        // the programs must compute its identities the same way before they match them.
        if let Err(e) = self.refresh_fs_layout() {
            warn!(error = %e, "btrfs layout unknown: files on btrfs keep their superblock's device and match no protection");
        }
        {
            let mut rules: Array<&mut MapData, RuleEntry> =
                array_mut(&mut self.ebpf, names::RULES)?;
            for (&id, entry) in &tables.rules {
                rules.set(id, entry, 0).map_err(map_err(names::RULES))?;
            }
            for id in self.installed.rules.keys() {
                if !tables.rules.contains_key(id) {
                    rules
                        .set(*id, RuleEntry::default(), 0)
                        .map_err(map_err(names::RULES))?;
                }
            }
        }
        sync_hash(
            hash_mut::<InodeKey, FileProtection>(&mut self.ebpf, names::PROTECTED_INODES)?,
            names::PROTECTED_INODES,
            &self.installed.inodes,
            &tables.inodes,
        )?;
        let replaced = self.forget_replaced(&mut tables)?;
        let devices_old = self.installed.tree_superblocks.clone();
        let devices_new = &tables.tree_superblocks;
        {
            let mut devices: HashMap<&mut MapData, u32, u32> =
                hash_mut(&mut self.ebpf, names::TREE_DEVICES)?;
            for dev in devices_new.difference(&devices_old) {
                devices
                    .insert(dev, 1, 0)
                    .map_err(map_err(names::TREE_DEVICES))?;
            }
        }
        sync_hash(
            hash_mut::<InodeKey, FileProtection>(&mut self.ebpf, names::PROTECTED_TREES)?,
            names::PROTECTED_TREES,
            &self.installed.trees,
            &tables.trees,
        )?;
        sync_hash(
            hash_mut::<ExcludedChildKey, u32>(&mut self.ebpf, names::EXCLUDED_CHILDREN)?,
            names::EXCLUDED_CHILDREN,
            &self.installed.excluded_children,
            &tables.excluded_children,
        )?;
        // The new trees hold from here: what the programs remember of the old tables (the
        // tree-walk cache, a device found without trees) goes now, not only once the rest
        // is written, and even if writing the rest fails.
        self.trees_changed()?;
        {
            // Directories before their names, and names before their directories go.
            let mut dirs: HashMap<&mut MapData, InodeKey, u32> =
                hash_mut(&mut self.ebpf, names::NAME_DIRECTORIES)?;
            for key in tables
                .name_directories
                .difference(&self.installed.name_directories)
            {
                dirs.insert(key, 1, 0)
                    .map_err(map_err(names::NAME_DIRECTORIES))?;
            }
        }
        sync_hash(
            hash_mut::<ExcludedChildKey, u32>(&mut self.ebpf, names::PROTECTED_NAMES)?,
            names::PROTECTED_NAMES,
            &self.installed.protected_names,
            &tables.protected_names,
        )?;
        {
            let mut dirs: HashMap<&mut MapData, InodeKey, u32> =
                hash_mut(&mut self.ebpf, names::NAME_DIRECTORIES)?;
            for key in self
                .installed
                .name_directories
                .difference(&tables.name_directories)
            {
                remove_present(&mut dirs, key, names::NAME_DIRECTORIES)?;
            }
        }
        {
            let mut devices: HashMap<&mut MapData, u32, u32> =
                hash_mut(&mut self.ebpf, names::TREE_DEVICES)?;
            for dev in devices_old.difference(devices_new) {
                remove_present(&mut devices, dev, names::TREE_DEVICES)?;
            }
        }
        {
            let mut trusted: HashMap<&mut MapData, TrustKey, u32> =
                hash_mut(&mut self.ebpf, names::TRUSTED_EXES)?;
            for key in tables.trusted.difference(&self.installed.trusted) {
                trusted
                    .insert(key, 1, 0)
                    .map_err(map_err(names::TRUSTED_EXES))?;
            }
            for key in self.installed.trusted.difference(&tables.trusted) {
                remove_present(&mut trusted, key, names::TRUSTED_EXES)?;
            }
        }
        sync_hash(
            hash_mut::<SysctlKey, u32>(&mut self.ebpf, names::PROTECTED_SYSCTLS)?,
            names::PROTECTED_SYSCTLS,
            &self.installed.sysctls,
            &tables.sysctls,
        )?;
        self.install_exec(&tables.exec)?;
        sync_hash(
            hash_mut::<InodeKey, ProcessProtection>(&mut self.ebpf, names::PROTECTED_PROCESSES)?,
            names::PROTECTED_PROCESSES,
            &self.installed.processes,
            &tables.processes,
        )?;
        self.installed = tables;
        self.name_cgroups();
        self.sync_netfilter()?;
        self.trees_changed()?;
        Ok(replaced)
    }

    /// Takes back the protection just given to objects that were replaced at their path
    /// after they were resolved, and leaves them out of the installed tables, so the next
    /// resolution gives it again if it still applies. Returns how many.
    ///
    /// dpkg rewrites its status file over and over in one run (`status-new` renamed over
    /// `status`, the old one kept as `status-old` and unlinked at the next write), and a
    /// resolution can stat `status` between two writes. By the time its tables are
    /// written, the kernel may already have moved the protection on to the next file
    /// (`move_protection`); writing the resolved inode again would protect `status-old`,
    /// and dpkg's next unlink of it would fail. Only objects the kernel moves protection
    /// for (upgradable and editable ones) are looked at. Each is looked at after its
    /// entry is written: if its path still leads to it then, any later replacement goes
    /// through the kernel's move. The paths are the legend's: host paths, as the tables
    /// the daemon installs are resolved at `/`.
    fn forget_replaced(&mut self, tables: &mut KernelTables) -> Result<usize, LoadError> {
        let replaced: Vec<InodeKey> = tables
            .inodes
            .iter()
            .filter(|&(key, protection)| {
                protection.flags & (FILE_UPGRADABLE | FILE_EDITABLE) != 0
                    && self.installed.inodes.get(key) != Some(protection)
            })
            .filter_map(|(key, _)| {
                let path = tables.legend.path(key)?;
                replaced_at(path, key).then_some(*key)
            })
            .collect();
        if replaced.is_empty() {
            return Ok(0);
        }
        let mut map: HashMap<&mut MapData, InodeKey, FileProtection> =
            hash_mut(&mut self.ebpf, names::PROTECTED_INODES)?;
        for key in &replaced {
            remove_present(&mut map, key, names::PROTECTED_INODES)?;
            tables.inodes.remove(key);
            if let Some(path) = tables.legend.paths.remove(key) {
                debug!(path = %path.display(), "replaced since it was resolved; left to the next resolution");
            }
        }
        Ok(replaced.len())
    }

    /// Invalidates the tree-walk cache after the tree tables changed (and turns it on,
    /// the first time, once the rename watcher is attached). Called once the tree maps
    /// are written and again after the rest: a walk that read the old epoch may have seen
    /// the old tables, and its entry is stale from here on.
    fn trees_changed(&mut self) -> Result<(), LoadError> {
        if !matches!(self.tree_cache, TreeCache::On) {
            return Ok(());
        }
        let mut epochs: Array<&mut MapData, u64> = array_mut(&mut self.ebpf, names::TREE_EPOCHS)?;
        let next = epochs
            .get(&TREE_EPOCH_POLICY, 0)
            .map_err(map_err(names::TREE_EPOCHS))?
            .wrapping_add(1)
            .max(1);
        epochs
            .set(TREE_EPOCH_POLICY, next, 0)
            .map_err(map_err(names::TREE_EPOCHS))
    }

    /// Puts one entry straight into a hash map, outside the installed tables: the
    /// self-test's canaries. Undo with [`Guard::canary_remove`].
    /// Brings the kernel's protected cgroups (`PROTECTED_CGROUPS`) to `cgroups`: each
    /// cgroup directory's identity → rule id and path (see `daemon::census`). The paths
    /// go into the legend, so a record names the cgroup file that was refused. Nothing is
    /// done when the census found what it found last time.
    pub fn protect_cgroups(
        &mut self,
        cgroups: BTreeMap<InodeKey, (u32, PathBuf)>,
    ) -> Result<(), LoadError> {
        if cgroups == self.protected_cgroups {
            return Ok(());
        }
        let rules = |c: &BTreeMap<InodeKey, (u32, PathBuf)>| -> BTreeMap<InodeKey, u32> {
            c.iter().map(|(&key, (rule, _))| (key, *rule)).collect()
        };
        sync_hash(
            hash_mut::<InodeKey, u32>(&mut self.ebpf, names::PROTECTED_CGROUPS)?,
            names::PROTECTED_CGROUPS,
            &rules(&self.protected_cgroups),
            &rules(&cgroups),
        )?;
        self.protected_cgroups = cgroups;
        self.name_cgroups();
        Ok(())
    }

    /// Puts the protected cgroups' paths in the installed legend.
    fn name_cgroups(&mut self) {
        for (key, (_, path)) in &self.protected_cgroups {
            self.installed
                .legend
                .paths
                .entry(*key)
                .or_insert_with(|| path.clone());
        }
    }

    pub(crate) fn canary_insert<K: aya::Pod, V: aya::Pod>(
        &mut self,
        map: &'static str,
        key: K,
        value: V,
    ) -> Result<(), LoadError> {
        hash_mut::<K, V>(&mut self.ebpf, map)?
            .insert(key, value, 0)
            .map_err(map_err(map))?;
        self.canary_changed(map)
    }

    /// Removes an entry put there with [`Guard::canary_insert`].
    pub(crate) fn canary_remove<K: aya::Pod, V: aya::Pod>(
        &mut self,
        map: &'static str,
        key: K,
    ) -> Result<(), LoadError> {
        let mut hash = hash_mut::<K, V>(&mut self.ebpf, map)?;
        remove_present(&mut hash, &key, map)?;
        self.canary_changed(map)
    }

    fn canary_changed(&mut self, map: &'static str) -> Result<(), LoadError> {
        if map == names::PROTECTED_TREES || map == names::TREE_DEVICES {
            self.trees_changed()?;
        }
        Ok(())
    }

    /// The key the kernel computes for the file at `path`, which this thread opens
    /// read-only while the identity probe is set to it. `None` when the open fails, or
    /// when the kernel reported nothing (the file layer's `file_open` program did not
    /// run).
    pub fn kernel_identity(&mut self, path: &Path) -> Result<Option<InodeKey>, LoadError> {
        let tid = nix::unistd::gettid().as_raw() as u32;
        let mut probe: Array<&mut MapData, IdentityProbe> =
            array_mut(&mut self.ebpf, names::IDENTITY_PROBE)?;
        let set = |probe: &mut Array<&mut MapData, IdentityProbe>, tid| {
            let value = IdentityProbe {
                tid,
                ..IdentityProbe::default()
            };
            probe
                .set(0, value, 0)
                .map_err(map_err(names::IDENTITY_PROBE))
        };
        set(&mut probe, tid)?;
        let opened = std::fs::File::open(path);
        let seen = probe.get(&0, 0).map_err(map_err(names::IDENTITY_PROBE));
        set(&mut probe, 0)?;
        Ok(match (opened, seen?) {
            (Ok(_), p) if p.seen != InodeKey::default() => Some(p.seen),
            _ => None,
        })
    }

    /// Sets one slot of an array map directly (the self-test's rule, class and config).
    pub(crate) fn canary_set<V: aya::Pod>(
        &mut self,
        map: &'static str,
        index: u32,
        value: V,
    ) -> Result<(), LoadError> {
        array_mut::<V>(&mut self.ebpf, map)?
            .set(index, value, 0)
            .map_err(map_err(map))
    }

    /// The exec layer's maps. The class count in the config goes last, so the kernel
    /// never sees a class before its words and objects.
    fn install_exec(&mut self, new: &ExecTables) -> Result<(), LoadError> {
        let old = self.installed.exec.clone();
        sync_hash(
            hash_mut::<WordKey, WordEntry>(&mut self.ebpf, names::COMMAND_WORDS)?,
            names::COMMAND_WORDS,
            &old.commands.words,
            &new.commands.words,
        )?;
        sync_hash(
            hash_mut::<ObjectKey, ObjectEntry>(&mut self.ebpf, names::COMMAND_OBJECTS)?,
            names::COMMAND_OBJECTS,
            &old.commands.objects,
            &new.commands.objects,
        )?;
        sync_hash(
            hash_mut::<u64, BinaryEntry>(&mut self.ebpf, names::COMMAND_BINARIES)?,
            names::COMMAND_BINARIES,
            &old.commands.binaries,
            &new.commands.binaries,
        )?;
        sync_hash(
            hash_mut::<InodeKey, u32>(&mut self.ebpf, names::EXE_CLASSES)?,
            names::EXE_CLASSES,
            &old.exe_classes,
            &new.exe_classes,
        )?;
        sync_hash(
            hash_mut::<InodeKey, u32>(&mut self.ebpf, names::TRUSTED_CALLERS)?,
            names::TRUSTED_CALLERS,
            &old.trusted_callers,
            &new.trusted_callers,
        )?;
        {
            let mut classes: Array<&mut MapData, ClassEntry> =
                array_mut(&mut self.ebpf, names::COMMAND_CLASSES)?;
            for (id, entry) in new.commands.classes.iter().enumerate() {
                classes
                    .set(id as u32, entry, 0)
                    .map_err(map_err(names::COMMAND_CLASSES))?;
            }
        }
        if new.commands.config != old.commands.config {
            let mut config: Array<&mut MapData, CommandConfig> =
                array_mut(&mut self.ebpf, names::COMMAND_CONFIG)?;
            config
                .set(0, new.commands.config, 0)
                .map_err(map_err(names::COMMAND_CONFIG))?;
        }
        Ok(())
    }
}

pub(super) fn hash_mut<'a, K: aya::Pod, V: aya::Pod>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<HashMap<&'a mut MapData, K, V>, LoadError> {
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
    HashMap::try_from(map).map_err(map_err(name))
}

pub(super) fn array_mut<'a, V: aya::Pod>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<Array<&'a mut MapData, V>, LoadError> {
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
    Array::try_from(map).map_err(map_err(name))
}

/// Takes ring buffer `name` out of `ebpf`, for the caller to read.
pub(super) fn ring_taken(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<RingBuf<MapData>, LoadError> {
    let map = ebpf.take_map(name).ok_or(LoadError::MissingMap(name))?;
    RingBuf::try_from(map).map_err(map_err(name))
}

pub(super) fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> LoadError {
    move |source| LoadError::Map { map, source }
}

/// Inserts new and changed entries, then removes stale ones.
fn sync_hash<K: aya::Pod, V: aya::Pod + PartialEq, T: Entries<K, V>>(
    mut map: HashMap<&mut MapData, K, V>,
    name: &'static str,
    old: &T,
    new: &T,
) -> Result<(), LoadError> {
    for (key, value) in new.entries() {
        if old.lookup(key) != Some(value) {
            map.insert(key, value, 0).map_err(map_err(name))?;
        }
    }
    for (key, _) in old.entries() {
        if new.lookup(key).is_none() {
            remove_present(&mut map, key, name)?;
        }
    }
    Ok(())
}

/// A table in memory, as [`sync_hash`] compares it with the one installed: the ordered
/// maps of [`KernelTables`] and the hash maps of the compiled commands.
trait Entries<K, V> {
    fn lookup(&self, key: &K) -> Option<&V>;
    fn entries<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)>
    where
        K: 'a,
        V: 'a;
}

impl<K: Ord, V> Entries<K, V> for std::collections::BTreeMap<K, V> {
    fn lookup(&self, key: &K) -> Option<&V> {
        self.get(key)
    }
    fn entries<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)>
    where
        K: 'a,
        V: 'a,
    {
        self.iter()
    }
}

impl<K: std::hash::Hash + Eq, V> Entries<K, V> for std::collections::HashMap<K, V> {
    fn lookup(&self, key: &K) -> Option<&V> {
        self.get(key)
    }
    fn entries<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)>
    where
        K: 'a,
        V: 'a,
    {
        self.iter()
    }
}

/// Whether the path an object was resolved at leads elsewhere now: to another inode
/// (itself, or where it links to). A path that is gone, or cannot be read, proves
/// nothing, and the object keeps its protection.
fn replaced_at(path: &Path, key: &InodeKey) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if inode_key(&meta) == *key {
        return false;
    }
    !meta.is_symlink() || std::fs::metadata(path).map_or(true, |m| inode_key(&m) != *key)
}

/// Removes a key; one that is already gone is not an error.
fn remove_present<K: aya::Pod, V: aya::Pod>(
    map: &mut HashMap<&mut MapData, K, V>,
    key: &K,
    name: &'static str,
) -> Result<(), LoadError> {
    match map.remove(key) {
        Ok(()) => Ok(()),
        Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        // The kernel removes entries too (a replaced configuration file's), and aya
        // reports that delete as the syscall's ENOENT.
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(())
        }
        Err(e) => Err(map_err(name)(e)),
    }
}

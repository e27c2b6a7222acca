//! The kernel tables: exactly what the loader writes into the programs' maps, built from
//! resolved objects. Both `rtguard run --protect …` and compiled policies produce one.

mod command_line;
mod legend;
pub mod maintenance;
pub mod netfilter;

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    path::{Path, PathBuf},
};

use guard_common::{
    file::{
        package_id, ExcludedChildKey, FILE_EDITABLE, FILE_PACKAGE_RECORD, FILE_TREE_EXCLUDED,
        FILE_UPGRADABLE, NO_PACKAGE, OPS_ALL, OPS_ANCESTOR, OPS_REMOVE, TRUST_PACKAGE_MANAGER,
    },
    process::GO_RUNTIME_FATAL,
    rule::{RuleEntry, RuleKind, GUARD_DEPENDENCIES_RULE, RULE_ENFORCE},
    sysctl::{SysctlKey, GUARD_SYSCTLS},
    FileOp, FileProtection, InodeKey, ProcessProtection, TrustKey,
};

use time::OffsetDateTime;

use self::maintenance::MaintenanceState;
pub use self::{command_line::CommandLinePaths, legend::Legend};
use crate::{
    policy::CompiledCommands,
    resolve::{inode_key, superblock_dev, Origin, ResolveError, RuleSet},
};

/// The rule name of what the programs depend on themselves, in the audit log.
pub const GUARD_DEPENDENCIES_NAME: &str = "rtguard-dependencies";

/// Package managers trusted to replace upgradable files, where they exist under the root.
pub const PACKAGE_MANAGERS: &[&str] = &["/usr/bin/dpkg", "/usr/bin/rpm"];

/// Everything the file layer's maps hold, keyed the way the kernel looks it up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelTables {
    /// Protected objects and their ancestor directories.
    pub inodes: BTreeMap<InodeKey, FileProtection>,
    /// Roots of protected trees.
    pub trees: BTreeMap<InodeKey, FileProtection>,
    /// The superblocks (`s_dev`) holding the roots in `trees`: the kernel walks parents
    /// only on these. Not the roots' keys' devices: on btrfs those are the subvolumes'.
    pub tree_superblocks: BTreeSet<u32>,
    /// Subtrees excluded by name below a tree root → the rule excluding them.
    pub excluded_children: BTreeMap<ExcludedChildKey, u32>,
    /// Names that may not be created in a directory → the rule protecting them.
    pub protected_names: BTreeMap<ExcludedChildKey, u32>,
    /// The directories of `protected_names`, which the kernel checks first.
    pub name_directories: BTreeSet<InodeKey>,
    /// Trusted executables per rule, and package managers.
    pub trusted: BTreeSet<TrustKey>,
    /// Rule table slots by rule id.
    pub rules: BTreeMap<u32, RuleEntry>,
    /// The exec layer's command tables.
    pub exec: ExecTables,
    /// Process layer: protected executables → rule and refused signals. Their
    /// supervisors are in `trusted`, keyed by the process rule.
    pub processes: BTreeMap<InodeKey, ProcessProtection>,
    /// Sysctls whose writes are refused (by name) → rule: what the programs depend on.
    pub sysctls: BTreeMap<SysctlKey, u32>,
    /// Netfilter layer: the protected chain and set names.
    pub netfilter: guard_common::netfilter::NetfilterConfig,
    /// What the keys, rule ids and object indexes stand for, to name them in events.
    pub legend: Legend,
}

/// Everything the exec layer's maps hold: the compiled command tables (the same tables
/// `rtguard explain` classifies with), with the maintenance windows marked on them, and
/// the host-dependent executable identities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecTables {
    pub commands: CompiledCommands,
    /// Command binaries by identity → class.
    pub exe_classes: BTreeMap<InodeKey, u32>,
    /// Executables → bit mask of the classes they may run destructive commands of.
    pub trusted_callers: BTreeMap<InodeKey, u32>,
}

impl ExecTables {
    /// The exec layer's share of a resolved policy, with the maintenance windows open at
    /// `now` marked on the objects they open (see [`maintenance::commands_at`]).
    pub fn from_rule_set(set: &RuleSet, windows: &MaintenanceState, now: OffsetDateTime) -> Self {
        let mut trusted_callers = BTreeMap::new();
        for t in &set.trusted_callers {
            *trusted_callers.entry(t.key).or_insert(0) |= t.classes;
        }
        Self {
            commands: maintenance::commands_at(set, windows, now),
            exe_classes: set
                .exe_classes
                .iter()
                .filter(|e| !maintenance::removal_script_open(e, windows, now))
                .map(|e| (e.key, e.class))
                .collect(),
            trusted_callers,
        }
    }
}

impl KernelTables {
    /// The kernel's tables for a resolved policy. Keys were taken by the resolver;
    /// ancestors are resolved here from the objects' paths under the rule set's root.
    /// What the package manager may replace, and which commands pass, depends on the
    /// maintenance windows open at `now` (see [`maintenance::package_manager_flags`]).
    pub fn from_rule_set(
        set: &RuleSet,
        windows: &MaintenanceState,
        now: OffsetDateTime,
    ) -> Result<Self, ResolveError> {
        let mut t = KernelTables::default();
        for (id, entry) in set.rule_entries() {
            t.rules.insert(id, entry);
        }
        for rule in &set.rules {
            t.legend.rules.insert(rule.id, rule.name.clone());
        }
        t.guard_dependencies(set.policy.mode == crate::policy::Mode::Enforce);
        t.exec = ExecTables::from_rule_set(set, windows, now);
        t.netfilter = netfilter::config(set);
        t.legend.objects = t.exec.commands.object_names.clone();
        for exe in &set.processes {
            let rule = set.rule(exe.rule);
            let signals = rule.map_or(0, |r| r.signal_mask);
            // A Go program's handler is its runtime's: the kernel sees the signals caught,
            // and the runtime exits on these unless the program asked for them.
            let runtime_fatal = if exe.go_runtime {
                GO_RUNTIME_FATAL & !rule.map_or(0, |r| r.handled_mask)
            } else {
                0
            };
            t.processes.entry(exe.key).or_insert(ProcessProtection {
                signals,
                runtime_fatal,
                rule_id: exe.rule,
                _pad: 0,
            });
            t.legend.paths.insert(exe.key, exe.path.clone());
        }
        for exe in &set.supervisors {
            t.trusted.insert(TrustKey::new(exe.key, exe.rule));
        }
        for object in &set.objects {
            let mut flags = maintenance::package_manager_flags(set, object, windows, now);
            // Configuration files: edits pass (and are reported), removal does not.
            let ops = if object.origin.is_editable() {
                flags |= FILE_EDITABLE;
                OPS_REMOVE
            } else {
                OPS_ALL
            };
            if let Origin::PackageRecord { .. } = object.origin {
                flags |= FILE_PACKAGE_RECORD;
            }
            let entry = merge(&mut t.inodes, object.key, object.rule, ops, flags);
            if let (NO_PACKAGE, Some(package)) = (entry.package, object.origin.package()) {
                entry.package = package_id(package.as_bytes());
            }
            t.legend.paths.insert(object.key, object.path.clone());
        }
        for tree in &set.trees {
            if tree.allow_writes {
                // A configuration tree: its root can't be removed or renamed, and the
                // entries it held when resolved are editable objects (above). What is
                // created in it later is free, so no walk is needed.
                merge(&mut t.inodes, tree.key, tree.rule, OPS_ANCESTOR, 0);
            } else {
                // Data trees are the runtime's own, never the package manager's.
                let root = under_root(&set.root, &tree.path);
                merge(
                    &mut t.trees,
                    tree.key,
                    tree.rule,
                    tree_ops(&root, OPS_ALL),
                    0,
                );
                t.tree_superblocks.insert(superblock_dev(&root)?);
            }
            t.legend.paths.insert(tree.key, tree.path.clone());
        }
        for child in &set.excluded_children {
            if let Some(key) = ExcludedChildKey::new(child.tree, child.name.as_bytes()) {
                t.excluded_children.insert(key, child.rule);
            }
        }
        for name in &set.protected_names {
            if let Some(key) = ExcludedChildKey::new(name.dir, name.name.as_bytes()) {
                t.protected_names.insert(key, name.rule);
                t.name_directories.insert(name.dir);
                if let Some(dir) = name.path.parent() {
                    t.legend
                        .paths
                        .entry(name.dir)
                        .or_insert_with(|| dir.to_owned());
                }
            }
        }
        for excluded in &set.tree_exclusions {
            t.trees.insert(
                excluded.key,
                FileProtection {
                    rule_id: excluded.rule,
                    ops: 0,
                    flags: FILE_TREE_EXCLUDED,
                    package: NO_PACKAGE,
                },
            );
            t.legend.paths.insert(excluded.key, excluded.path.clone());
            t.tree_superblocks
                .insert(superblock_dev(&under_root(&set.root, &excluded.path))?);
        }
        // Objects are identities taken without following a final symlink (an enablement
        // link is protected as the link): their ancestors are the directories holding
        // them. Tree roots were followed.
        let protected: Vec<(PathBuf, u32, Follow)> = set
            .objects
            .iter()
            .map(|o| (o.path.clone(), o.rule, Follow::Parent))
            .chain(
                set.trees
                    .iter()
                    .map(|t| (t.path.clone(), t.rule, Follow::Final)),
            )
            .collect();
        // Objects share directories (a glob's thousands of files, a package's): each
        // directory is walked once per rule, not once per object in it.
        let mut walked = HashSet::new();
        for (path, rule, follow) in protected {
            let walk_from = match follow {
                Follow::Parent => path.parent().unwrap_or(&path),
                Follow::Final => &path,
            };
            if walked.insert((walk_from.to_owned(), rule, matches!(follow, Follow::Final))) {
                t.protect_ancestors(&under_root(&set.root, &path), rule, follow)?;
            }
        }
        for writer in &set.trusted_writers {
            t.trusted.insert(TrustKey::new(writer.key, writer.rule));
        }
        for exe in PACKAGE_MANAGERS {
            let path = set.root.join(exe.trim_start_matches('/'));
            if path.exists() {
                t.package_manager(&path)?;
            }
        }
        Ok(t)
    }

    /// Protects what the programs depend on themselves (the sysctls of
    /// [`GUARD_SYSCTLS`]) under [`GUARD_DEPENDENCIES_RULE`], enforcing or only reporting
    /// as the policy does.
    pub fn guard_dependencies(&mut self, enforce: bool) {
        self.rule(GUARD_DEPENDENCIES_RULE, RuleKind::Paths, enforce);
        self.legend
            .rules
            .insert(GUARD_DEPENDENCIES_RULE, GUARD_DEPENDENCIES_NAME.to_owned());
        for name in GUARD_SYSCTLS {
            if let Some(key) = SysctlKey::new(name) {
                self.sysctls.insert(key, GUARD_DEPENDENCIES_RULE);
            }
        }
    }

    /// Declares a rule and its mode.
    pub fn rule(&mut self, rule_id: u32, kind: RuleKind, enforce: bool) {
        let flags = if enforce { RULE_ENFORCE } else { 0 };
        self.rules.insert(
            rule_id,
            RuleEntry {
                flags,
                kind: kind as u32,
            },
        );
    }

    /// Protects the object at `path` against `ops`, and its ancestor directories against
    /// being renamed or removed. `upgradable` lets the package manager replace it.
    pub fn protect_object(
        &mut self,
        path: &Path,
        rule_id: u32,
        ops: u32,
        upgradable: bool,
    ) -> Result<InodeKey, ResolveError> {
        let key = stat_key(path)?;
        let flags = if upgradable { FILE_UPGRADABLE } else { 0 };
        merge(&mut self.inodes, key, rule_id, ops, flags);
        self.legend.paths.insert(key, path.to_owned());
        self.protect_ancestors(path, rule_id, Follow::Final)?;
        Ok(key)
    }

    /// Protects the directory at `path` and everything below it, now and later, against
    /// `ops`, and its ancestors against being renamed or removed. Only a directory roots
    /// a tree: the kernel programs look a non-directory up as an object, never as a root.
    pub fn protect_tree(
        &mut self,
        path: &Path,
        rule_id: u32,
        ops: u32,
    ) -> Result<InodeKey, ResolveError> {
        let meta = stat(path)?;
        if !meta.is_dir() {
            return Err(ResolveError::NotADirectory {
                path: path.to_owned(),
            });
        }
        let key = inode_key(&meta);
        merge(&mut self.trees, key, rule_id, tree_ops(path, ops), 0);
        self.tree_superblocks.insert(superblock_dev(path)?);
        self.legend.paths.insert(key, path.to_owned());
        self.protect_ancestors(path, rule_id, Follow::Final)?;
        Ok(key)
    }

    /// Trusts the executable at `exe` for `rule_id`'s objects and trees.
    pub fn trust(&mut self, exe: &Path, rule_id: u32) -> Result<(), ResolveError> {
        self.trusted.insert(TrustKey::new(stat_key(exe)?, rule_id));
        Ok(())
    }

    /// Trusts the executable at `exe` to replace upgradable objects.
    pub fn package_manager(&mut self, exe: &Path) -> Result<(), ResolveError> {
        self.trusted
            .insert(TrustKey::new(stat_key(exe)?, TRUST_PACKAGE_MANAGER));
        Ok(())
    }

    fn protect_ancestors(
        &mut self,
        path: &Path,
        rule_id: u32,
        follow: Follow,
    ) -> Result<(), ResolveError> {
        // Ancestors are taken from the path as resolved (symlinks followed), so that
        // `mv /usr/bin /x` is caught for /usr/bin/containerd even where /bin -> usr/bin.
        let (resolve, skip) = match follow {
            Follow::Final => (path, 1),
            Follow::Parent => match path.parent() {
                Some(parent) => (parent, 0),
                None => return Ok(()),
            },
        };
        let real = std::fs::canonicalize(resolve).map_err(|source| ResolveError::Stat {
            path: resolve.to_owned(),
            source,
        })?;
        for dir in real.ancestors().skip(skip) {
            let key = stat_key(dir)?;
            merge(&mut self.inodes, key, rule_id, OPS_ANCESTOR, 0);
            self.legend
                .paths
                .entry(key)
                .or_insert_with(|| dir.to_owned());
        }
        Ok(())
    }
}

/// Where a policy's absolute `path` is under the resolution's root.
fn under_root(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Whose ancestors [`KernelTables::protect_ancestors`] protects.
#[derive(Clone, Copy)]
enum Follow {
    /// The object the path leads to, symlinks followed.
    Final,
    /// The path's own directory entry: a symlink is itself, and its directories hold it.
    Parent,
}

/// Adds a protection, keeping what is already there: ops and flags are unioned, and the
/// first rule to claim an inode stays its rule (objects are added before ancestors).
fn merge(
    map: &mut BTreeMap<InodeKey, FileProtection>,
    key: InodeKey,
    rule_id: u32,
    ops: u32,
    flags: u32,
) -> &mut FileProtection {
    let entry = map.entry(key).or_insert(FileProtection {
        rule_id,
        ops: 0,
        flags: 0,
        package: NO_PACKAGE,
    });
    entry.ops |= ops;
    entry.flags |= flags;
    entry
}

fn stat_key(path: &Path) -> Result<InodeKey, ResolveError> {
    stat(path).map(|m| inode_key(&m))
}

fn stat(path: &Path) -> Result<std::fs::Metadata, ResolveError> {
    std::fs::metadata(path).map_err(|source| ResolveError::Stat {
        path: path.to_owned(),
        source,
    })
}

/// What a tree root at `path` is guarded against. An empty root may be mounted on: it
/// is where a data disk goes (`/var/lib/docker` before its disk is mounted), and the
/// mount table watch protects what the disk holds once it is there. A root with anything
/// in it may not: a mount would hide it.
fn tree_ops(path: &Path, ops: u32) -> u32 {
    let empty = std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none());
    if empty {
        ops & !FileOp::Mount.bit()
    } else {
        ops
    }
}

#[cfg(test)]
mod tests {
    use guard_common::file::{OPS_ALL, OPS_REMOVE};

    use super::*;

    #[test]
    fn a_tree_is_rooted_at_a_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("meta.db");
        std::fs::write(&file, b"x").unwrap();
        let mut t = KernelTables::default();
        let err = t.protect_tree(&file, 3, OPS_ALL).unwrap_err();
        assert!(
            err.to_string().ends_with("as a tree: not a directory"),
            "{err}"
        );
        assert!(t.trees.is_empty() && t.tree_superblocks.is_empty());
        let missing = t.protect_tree(&dir.path().join("absent"), 3, OPS_ALL);
        assert!(matches!(missing, Err(ResolveError::Stat { .. })));
    }

    #[test]
    fn objects_bring_their_ancestors_with_rename_and_rmdir_only() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let file = bin.join("containerd");
        std::fs::write(&file, b"x").unwrap();

        let mut t = KernelTables::default();
        t.rule(1, RuleKind::Paths, true);
        let key = t.protect_object(&file, 1, OPS_ALL, false).unwrap();

        assert_eq!(t.inodes[&key].ops, OPS_ALL);
        let parent = stat_key(&bin).unwrap();
        assert_eq!(t.inodes[&parent].ops, OPS_ANCESTOR);
        assert_eq!(
            t.legend.paths[&parent],
            std::fs::canonicalize(&bin).unwrap()
        );
        let root = stat_key(Path::new("/")).unwrap();
        assert!(t.inodes.contains_key(&root), "the walk reaches /");
        assert!(t.rules[&1].enforces());
    }

    #[test]
    fn an_object_that_is_also_an_ancestor_keeps_both() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("etc-containerd");
        std::fs::create_dir(&tree).unwrap();
        let conf = tree.join("config.toml");
        std::fs::write(&conf, b"x").unwrap();

        let mut t = KernelTables::default();
        let tree_key = t.protect_object(&tree, 1, OPS_REMOVE, false).unwrap();
        t.protect_object(&conf, 2, OPS_ALL, true).unwrap();
        assert_eq!(t.inodes[&tree_key].ops, OPS_REMOVE | OPS_ANCESTOR);
        assert_eq!(t.inodes[&tree_key].rule_id, 1);
        let conf_key = stat_key(&conf).unwrap();
        assert_eq!(t.inodes[&conf_key].flags, FILE_UPGRADABLE);
    }

    #[test]
    fn trees_mark_their_device() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state"), b"x").unwrap();
        let mut t = KernelTables::default();
        let key = t.protect_tree(dir.path(), 3, OPS_REMOVE).unwrap();
        assert_eq!(t.trees[&key].ops, OPS_REMOVE);
        assert_eq!(
            t.tree_superblocks.iter().copied().collect::<Vec<_>>(),
            [key.dev]
        );
    }

    #[test]
    fn an_empty_tree_root_may_be_mounted_on_and_a_full_one_not() {
        let empty = tempfile::tempdir().unwrap();
        let full = tempfile::tempdir().unwrap();
        std::fs::write(full.path().join("engine-id"), b"id\n").unwrap();
        let mut t = KernelTables::default();
        let empty_key = t.protect_tree(empty.path(), 3, OPS_ALL).unwrap();
        let full_key = t.protect_tree(full.path(), 3, OPS_ALL).unwrap();
        assert_eq!(t.trees[&empty_key].ops, OPS_ALL & !FileOp::Mount.bit());
        assert_eq!(t.trees[&full_key].ops, OPS_ALL);
    }
}

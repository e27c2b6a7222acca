//! The compiled rule set: everything a policy protects on one host, as kernel identities,
//! plus the command tables and the reports `rtguard check` prints.
//!
//! This file holds the resolved types; `build` resolves a policy into them (`rules` has
//! the part for each kind of rule), and `report` holds what each rule reports.

mod build;
mod report;
mod rules;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use guard_common::{
    exec::{CommandLine, NO_CLASS},
    rule::{RuleEntry, RuleKind, RULE_ENFORCE},
    InodeKey,
};
use serde::{Serialize, Serializer};

use super::units::UnitRole;
use crate::policy::{self, CompiledCommands, Location, Mode};

pub use build::{resolve, ResolveOptions};
pub use report::{ItemReport, ItemState, RuleReport, Warning};
pub use rules::EXEC_PATH;

fn serialize_key<S: Serializer>(key: &InodeKey, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Key {
        dev: String,
        ino: u64,
    }
    Key {
        dev: format!("{}:{}", key.major(), key.minor()),
        ino: key.ino,
    }
    .serialize(s)
}

/// The policy a rule set came from.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyInfo {
    pub file: String,
    pub environment: String,
    pub sha256: String,
    pub mode: Mode,
}

/// A rule as the kernel and the audit log know it.
#[derive(Clone, Debug, Serialize)]
pub struct RuleInfo {
    /// The id the kernel carries in events (1-based).
    pub id: u32,
    pub name: String,
    #[serde(serialize_with = "serialize_kind")]
    pub kind: RuleKind,
    pub mode: Mode,
    pub location: Location,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Packages rules: whether the package manager may replace the files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<policy::Upgrade>,
    /// Trees rules: only removal and renames are refused, not writes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_writes: bool,
    /// Processes rules: bit n set refuses signal n whatever the process does with it.
    #[serde(skip_serializing_if = "is_zero")]
    pub signal_mask: u64,
    /// Processes rules: bit n set, the programs handle signal n although their runtime
    /// catches every signal (the rule's `handles`).
    #[serde(skip_serializing_if = "is_zero")]
    pub handled_mask: u64,
}

fn serialize_kind<S: Serializer>(kind: &RuleKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl RuleInfo {
    /// The slot of the kernel's rule table.
    pub fn entry(&self) -> RuleEntry {
        RuleEntry {
            flags: if self.mode == Mode::Enforce {
                RULE_ENFORCE
            } else {
                0
            },
            kind: self.kind as u32,
        }
    }
}

/// Why an object is protected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum Origin {
    Package {
        package: String,
        conffile: bool,
    },
    Path {
        pattern: String,
    },
    Unit {
        unit: String,
        role: UnitRole,
    },
    /// Present in an `allow_writes` (configuration) tree when the daemon first resolved it.
    TreeEntry {
        tree: PathBuf,
    },
    /// dpkg's record of a protected package (`/var/lib/dpkg/info/<package>.*`), or, with no
    /// package, the status file: written by dpkg only. Removing `containerd.list` or
    /// editing the package's stanza out of `status` are known "force-remove" recipes.
    PackageRecord {
        package: Option<String>,
    },
}

impl Origin {
    /// The package the object belongs to, for the kernel's [`package_id`].
    ///
    /// [`package_id`]: guard_common::file::package_id
    pub fn package(&self) -> Option<&str> {
        match self {
            Origin::Package { package, .. }
            | Origin::PackageRecord {
                package: Some(package),
            } => Some(package),
            _ => None,
        }
    }

    /// A configuration file: edits pass, removal and renaming away are refused.
    pub fn is_editable(&self) -> bool {
        matches!(
            self,
            Origin::Package { conffile: true, .. } | Origin::TreeEntry { .. }
        )
    }
}

/// What each configuration (`allow_writes`) tree held when it was first resolved: tree
/// path → the paths of its entries. Only these are refused removal; what is created later
/// (temp files, swap files, backups) is not. A daemon resolves its trees once and passes
/// the result back in, so a reload never adopts an editor's temp file.
pub type EditableBaseline = BTreeMap<PathBuf, Vec<PathBuf>>;

/// How many entries of one configuration tree are protected; the rest are reported.
pub const MAX_EDITABLE_ENTRIES: usize = 10_000;

/// A protected file (or link, or socket) by identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedObject {
    /// The path inside the root.
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub key: InodeKey,
    pub rule: u32,
    pub origin: Origin,
}

/// A protected directory with its subtree, or a subtree excluded from one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedTree {
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub key: InodeKey,
    pub rule: u32,
    /// Only removal and renames are refused.
    pub allow_writes: bool,
}

/// A subtree excluded by its name below a tree root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExcludedChild {
    /// The excluded path (it need not exist).
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub tree: InodeKey,
    pub name: String,
    pub rule: u32,
}

/// A name no one may create in a directory: a protected unit's name in a unit directory
/// that overrides the packaged one (a link to /dev/null there is a mask).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProtectedName {
    /// The path the name would have (it does not exist).
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub dir: InodeKey,
    pub name: String,
    pub rule: u32,
}

/// An executable by identity, tied to the rule it matters for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedExe {
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub key: InodeKey,
    pub rule: u32,
    /// A Go program: its runtime catches nearly every signal and exits on some of them
    /// (see `guard_common::process::GO_RUNTIME_FATAL`). Found for protected processes
    /// only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub go_runtime: bool,
}

/// A command binary by identity → its class, for execs under another name (a hard link).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExeClass {
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub key: InodeKey,
    pub class: u32,
}

/// An executable that may run destructive commands of some classes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrustedCaller {
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub key: InodeKey,
    /// Bit c: trusted for class c.
    pub classes: u32,
}

/// A chain or set name a `[[netfilter]]` rule protects (`DOCKER*`), for the netfilter
/// layer's patterns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetfilterName {
    pub rule: u32,
    /// `guard_common::netfilter::PATTERN_CHAIN` or `PATTERN_SET`.
    pub kind: u32,
    /// The name without a trailing `*`.
    pub literal: String,
    pub wildcard: bool,
}

/// Everything a policy protects on one host.
#[derive(Clone, Debug, Serialize)]
pub struct RuleSet {
    pub policy: PolicyInfo,
    pub root: PathBuf,
    /// `rules[i].id == i + 1`.
    pub rules: Vec<RuleInfo>,
    /// File layer: one entry per (dev, ino); the first rule to claim an inode keeps it,
    /// unless a later one enforces and the first only audits.
    pub objects: Vec<ResolvedObject>,
    /// Trees whose every entry is refused (data trees). Configuration (`allow_writes`)
    /// trees are here too; the kernel tables protect their entries as objects.
    pub trees: Vec<ResolvedTree>,
    pub tree_exclusions: Vec<ResolvedTree>,
    /// Subtrees excluded by name, directly below a tree root: they hold for a directory
    /// of that name whenever it appears.
    pub excluded_children: Vec<ExcludedChild>,
    /// Names that may not be created (protected units' names in the override
    /// directories).
    pub protected_names: Vec<ProtectedName>,
    /// The entries of each configuration tree this resolution protected.
    pub editable_baseline: EditableBaseline,
    pub trusted_writers: Vec<ResolvedExe>,
    /// Process layer.
    pub processes: Vec<ResolvedExe>,
    pub supervisors: Vec<ResolvedExe>,
    /// Exec layer, host-dependent half (the tables are in `commands`).
    pub exe_classes: Vec<ExeClass>,
    pub trusted_callers: Vec<TrustedCaller>,
    /// Netfilter layer: the protected chain and set names, and the command classes (bits)
    /// whose trusted callers may change them.
    pub netfilter_names: Vec<NetfilterName>,
    pub netfilter_classes: u32,
    pub package_databases: Vec<String>,
    /// Units whose unit file a package of a `[[packages]]` rule ships, with those
    /// packages: a window that allows removing the package lets its maintainer scripts
    /// stop and disable the unit.
    pub unit_packages: BTreeMap<String, BTreeSet<String>>,
    pub reports: Vec<RuleReport>,
    pub warnings: Vec<Warning>,
    #[serde(skip)]
    pub commands: CompiledCommands,
}

impl RuleSet {
    pub fn rule(&self, id: u32) -> Option<&RuleInfo> {
        id.checked_sub(1).and_then(|i| self.rules.get(i as usize))
    }

    /// The kernel's rule table: (id, entry) for every rule.
    pub fn rule_entries(&self) -> Vec<(u32, RuleEntry)> {
        self.rules.iter().map(|r| (r.id, r.entry())).collect()
    }

    /// Class of an executable by identity, [`NO_CLASS`] if none.
    pub fn exe_class(&self, key: &InodeKey) -> u32 {
        self.exe_classes
            .iter()
            .find(|e| e.key == *key)
            .map_or(NO_CLASS, |e| e.class)
    }

    /// Classes the executable may run destructive commands of.
    pub fn trusted_classes(&self, key: &InodeKey) -> u32 {
        self.trusted_callers
            .iter()
            .filter(|t| t.key == *key)
            .fold(0, |mask, t| mask | t.classes)
    }

    /// Fills the host-dependent fields of a command line: the class of the executed file
    /// by inode and the classes its caller is trusted for.
    pub fn annotate(
        &self,
        line: &mut CommandLine,
        exe: Option<&InodeKey>,
        caller: Option<&InodeKey>,
    ) {
        if let Some(exe) = exe {
            line.exe_class = self.exe_class(exe);
        }
        if let Some(caller) = caller {
            line.trusted_classes = self.trusted_classes(caller);
        }
    }
}

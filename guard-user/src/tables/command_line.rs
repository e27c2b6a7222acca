//! What `rtguard run --protect … --protect-tree … --trust …` protects, as kernel tables:
//! the same tables a policy compiles to, with two rules of the command line's own.

use std::path::PathBuf;

use guard_common::{file::OPS_ALL, rule::RuleKind};

use super::{KernelTables, PACKAGE_MANAGERS};
use crate::resolve::ResolveError;

/// Rule ids for what the command line protects.
const RULE_PATHS: u32 = 1;
const RULE_TREES: u32 = 2;

/// Paths named on the command line.
#[derive(Clone, Debug, Default)]
pub struct CommandLinePaths {
    /// Protected files and directories (`--protect`).
    pub objects: Vec<PathBuf>,
    /// Protected files the package manager may replace (`--upgradable`).
    pub upgradable: Vec<PathBuf>,
    /// Protected trees (`--protect-tree`).
    pub trees: Vec<PathBuf>,
    /// Executables trusted with all of the above (`--trust`).
    pub trusted: Vec<PathBuf>,
    /// Package managers trusted with upgrades (`--package-manager`).
    pub package_managers: Vec<PathBuf>,
}

impl CommandLinePaths {
    /// The package managers trusted when none are named: dpkg and rpm, where present.
    pub fn default_package_managers() -> Vec<PathBuf> {
        PACKAGE_MANAGERS
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect()
    }
}

impl KernelTables {
    /// The kernel's tables for paths named on the command line.
    pub fn from_command_line(spec: &CommandLinePaths) -> Result<Self, ResolveError> {
        let mut t = KernelTables::default();
        t.rule(RULE_PATHS, RuleKind::Paths, true);
        t.rule(RULE_TREES, RuleKind::Trees, true);
        t.guard_dependencies(true);
        t.legend
            .rules
            .insert(RULE_PATHS, "command-line-paths".to_owned());
        t.legend
            .rules
            .insert(RULE_TREES, "command-line-trees".to_owned());
        for path in &spec.objects {
            t.protect_object(path, RULE_PATHS, OPS_ALL, false)?;
        }
        for path in &spec.upgradable {
            t.protect_object(path, RULE_PATHS, OPS_ALL, true)?;
        }
        for dir in &spec.trees {
            t.protect_tree(dir, RULE_TREES, OPS_ALL)?;
        }
        for exe in &spec.trusted {
            t.trust(exe, RULE_PATHS)?;
            t.trust(exe, RULE_TREES)?;
        }
        for exe in &spec.package_managers {
            t.package_manager(exe)?;
        }
        Ok(t)
    }
}

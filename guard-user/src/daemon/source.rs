//! What the daemon protects: a policy, or paths named on the command line. Resolved again
//! whenever inodes may have changed (an upgrade replaced protected files, a filesystem was
//! mounted on a protected path, a window opened or closed, a reload).

use std::{path::PathBuf, sync::Mutex};

use crate::{
    audit::{PolicyRef, RecordContext},
    policy::Policy,
    resolve::{self, EditableBaseline, ResolveError, ResolveOptions},
    tables::{maintenance::MaintenanceState, CommandLinePaths, KernelTables},
};

/// What to protect, and where it came from.
pub(crate) enum Source {
    Policy {
        path: PathBuf,
        policy: Box<Policy>,
        /// What the configuration trees held when this daemon first resolved them:
        /// later resolutions (reloads, upgrades, edits) protect those entries only.
        baseline: Mutex<EditableBaseline>,
    },
    CommandLine(CommandLinePaths),
}

impl Source {
    pub(crate) fn policy(path: PathBuf, policy: Policy, baseline: EditableBaseline) -> Self {
        Source::Policy {
            path,
            policy: Box::new(policy),
            baseline: Mutex::new(baseline),
        }
    }

    pub(crate) fn baseline(&self) -> EditableBaseline {
        match self {
            Source::Policy { baseline, .. } => {
                baseline.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }
            Source::CommandLine(_) => EditableBaseline::new(),
        }
    }

    /// The kernel tables for what this source protects now, with `windows` applied.
    pub(crate) fn resolve(&self, windows: &MaintenanceState) -> Result<KernelTables, ResolveError> {
        match self {
            Source::Policy {
                policy, baseline, ..
            } => {
                let options = ResolveOptions {
                    root: PathBuf::from("/"),
                    editable_baseline: self.baseline(),
                    ..Default::default()
                };
                let set = resolve::resolve(policy, &options)?;
                *baseline.lock().unwrap_or_else(|e| e.into_inner()) = set.editable_baseline.clone();
                let now = time::OffsetDateTime::now_utc();
                KernelTables::from_rule_set(&set, windows, now)
            }
            Source::CommandLine(spec) => KernelTables::from_command_line(spec),
        }
    }

    /// Whether refusals are explained on the refused process's terminal.
    pub(crate) fn terminal_notices(&self) -> bool {
        match self {
            Source::Policy { policy, .. } => policy.terminal_notices,
            Source::CommandLine(_) => true,
        }
    }

    pub(crate) fn audit_context(&self) -> RecordContext {
        match self {
            Source::Policy { policy, .. } => RecordContext::new(
                policy.environment.clone(),
                PolicyRef {
                    name: policy.source.name.clone(),
                    sha256: policy.sha256.clone(),
                },
            ),
            Source::CommandLine(_) => RecordContext::new(
                "command-line",
                PolicyRef {
                    name: "command line".to_owned(),
                    sha256: String::new(),
                },
            ),
        }
    }
}

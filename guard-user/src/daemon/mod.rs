//! The daemon behind `rtguard run`. It runs the flow the rest of the crate describes:
//! resolve what to protect ([`source`]), turn it into kernel tables and install them,
//! prove enforcement ([`self_test`]), then serve: record the kernel's decisions
//! ([`decisions`]), follow the host ([`watch`]), reload and expire windows ([`reload`]),
//! and publish its state ([`status`]). With `--pin` it hands enforcement over between
//! daemons ([`takeover`]); where the kernel cannot enforce, it observes ([`degraded`]).
//!
//! [`start::run`] is the entry point; the CLI only turns arguments into [`Options`].

mod decisions;
pub mod degraded;
mod reload;
pub mod self_test;
mod serve;
mod source;
mod start;
pub mod status;
mod takeover;
mod watch;

use std::{collections::BTreeSet, path::PathBuf};

use tracing::{error, warn};

pub use start::{run, Options, Outcome};

use self::{
    self_test::IdentityCheck,
    source::Source,
    status::{DaemonStatus, GuardState, ProtectedCounts, Stopwatch},
    takeover::PendingGeneration,
};
use crate::{
    audit::{config_history::History, AuditTrail},
    loader::{Guard, LoadError, Mode, PinDir},
    tables::{maintenance::MaintenanceState, KernelTables},
};

/// The running guard's userspace: what it protects, where it records, what it publishes.
pub(crate) struct Daemon {
    source: Source,
    trail: AuditTrail,
    status_file: PathBuf,
    published: DaemonStatus,
    windows: MaintenanceState,
    windows_file: PathBuf,
    /// `--pin`: the pin directory and this start's generation.
    pins: Option<(PinDir, PendingGeneration)>,
    /// Processes (tgids) running a package command the exec layer allowed as an upgrade,
    /// an install or a removal in a window: once they have ended, the tables are resolved
    /// again.
    package_operations: BTreeSet<u32>,
    /// The start's steps, published once the daemon is ready.
    stopwatch: Stopwatch,
    /// Kept versions of the configuration files (`rtguard config`).
    history: History,
    /// Counts table installs, so the configuration watch follows the tables.
    tables_generation: u64,
    /// Why the start's self-test did not prove enforcement (empty when it did).
    not_proven: String,
}

impl Daemon {
    /// Puts `tables` in the maps, proves the identities on every filesystem they hold
    /// objects on, and states what that comes to.
    pub(super) fn install(
        &mut self,
        guard: &mut Guard,
        tables: KernelTables,
    ) -> Result<(), LoadError> {
        self.published.protected = ProtectedCounts {
            inodes: tables.inodes.len(),
            trees: tables.trees.len(),
            trusted_executables: tables.trusted.len(),
            rules: tables.rules.len(),
        };
        self.tables_generation += 1;
        guard.install(tables)?;
        let checks = self_test::identities(guard)?;
        for check in checks.iter().filter(|c| !c.passed) {
            error!("identity mismatch, objects on this filesystem are not protected: {check}");
        }
        self.published.identities = checks;
        self.assess(guard);
        // After the start, a change of state must show at once.
        if self.tables_generation > 1 {
            self.publish();
        }
        Ok(())
    }

    /// The state and its reason, from the self-test, the identity checks and the mode.
    /// Never "enforcing" while the kernel cannot match objects the policy protects.
    pub(super) fn assess(&mut self, guard: &Guard) {
        let self_tested = self.not_proven.is_empty();
        let mismatched: Vec<String> = self
            .published
            .identities
            .iter()
            .filter(|c| !c.passed)
            .map(IdentityCheck::to_string)
            .collect();
        self.published.state = match (guard.mode(), self_tested && mismatched.is_empty()) {
            (_, false) => GuardState::Degraded,
            (Mode::Enforce, true) => GuardState::Enforcing,
            (Mode::Audit, true) => GuardState::Auditing,
        };
        let mechanism = guard.mechanism_summary();
        self.published.reason = if !self_tested {
            self.not_proven.clone()
        } else if !mismatched.is_empty() {
            format!(
                "{mechanism}; the kernel does not match the objects rtguard resolved on {} \
                 filesystem(s): {}",
                mismatched.len(),
                mismatched.join("; ")
            )
        } else {
            match self.published.state {
                GuardState::Enforcing => format!("{mechanism}; self-test passed"),
                GuardState::Auditing => {
                    format!("{mechanism}; audit mode: matches are reported, not refused")
                }
                GuardState::Degraded => "enforcement not proven".to_owned(),
            }
        };
    }

    /// Moves the kernel's count of events it could not queue into the audit log (carried
    /// by the next record) and the published counters.
    pub(super) fn account_drops(&mut self, guard: &Guard) -> Result<(), LoadError> {
        let dropped = guard.dropped_events()?;
        if dropped > self.published.events.dropped {
            let lost = dropped - self.published.events.dropped;
            warn!(dropped = lost, "events lost: the ring buffer was full");
            self.trail.log.add_dropped(lost);
            self.published.events.dropped = dropped;
        }
        Ok(())
    }

    pub(super) fn publish(&mut self) {
        self.published.updated = status::now();
        if let Err(e) = self.published.write(&self.status_file) {
            warn!(
                "cannot publish status to {}: {e}",
                self.status_file.display()
            );
        }
    }
}

/// Attached LSM programs grouped by layer, as `rtguard status` lists them.
pub(super) fn layers(attached: &[&'static str]) -> Vec<(String, Vec<String>)> {
    let layer_of = |hook: &str| match hook {
        "bprm_check_security" => "exec",
        "task_kill" => "process",
        _ => "file",
    };
    ["file", "exec", "process"]
        .into_iter()
        .map(|layer| {
            let hooks = attached
                .iter()
                .filter(|h| layer_of(h) == layer)
                .map(|h| h.to_string())
                .collect();
            (layer.to_owned(), hooks)
        })
        .collect()
}

//! The daemon behind `rtguard run`. It runs the flow the rest of the crate describes:
//! resolve what to protect ([`source`]), turn it into kernel tables and install them,
//! prove enforcement ([`self_test`]), then serve: record the kernel's decisions
//! ([`decisions`]), follow the host ([`watch`]), reload and expire windows ([`reload`]),
//! and publish its state ([`status`]). With `--pin` it hands enforcement over between
//! daemons ([`takeover`]); where the kernel cannot enforce, it observes ([`degraded`]).
//!
//! [`start::run`] is the entry point; the CLI only turns arguments into [`Options`].

mod census;
mod decisions;
pub mod degraded;
pub mod notice;
pub mod proof;
mod reload;
pub mod self_test;
mod serve;
mod source;
mod start;
pub mod status;
mod takeover;
mod watch;

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use tracing::{error, info, warn};

pub use start::{run, Options, Outcome};

use self::{
    notice::Notices,
    self_test::IdentityCheck,
    source::Source,
    status::{DaemonStatus, GuardState, Proof, ProtectedCounts, Stopwatch},
    takeover::PendingGeneration,
};
use crate::{
    audit::{config_history::History, AuditTrail},
    host::usage,
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
    /// The last install left out objects replaced since their resolution: resolve again.
    resolve_again: bool,
    /// The start's steps, published once the daemon is ready.
    stopwatch: Stopwatch,
    /// Kept versions of the configuration files (`rtguard config`).
    history: History,
    /// Counts table installs, so the configuration watch follows the tables.
    tables_generation: u64,
    /// Why the start's self-test did not prove enforcement (empty when it did).
    not_proven: String,
    /// Refusals to explain on their terminals; `None` when the policy turns that off.
    notices: Option<Notices>,
    /// Where the proof's canaries are made (next to the status file).
    canary_dir: PathBuf,
    /// How often enforcement is proven on the canaries.
    proof_interval: Duration,
}

impl Daemon {
    /// Puts `tables` in the maps, proves the identities on every filesystem they hold
    /// objects on, and states what that comes to.
    pub(super) fn install(
        &mut self,
        guard: &mut Guard,
        tables: KernelTables,
    ) -> Result<(), LoadError> {
        self.published.protected = ProtectedCounts::of(&tables);
        self.tables_generation += 1;
        let replaced = guard.install(tables)?;
        if replaced > 0 {
            info!(
                objects = replaced,
                "protected files were replaced while the policy was resolved; resolving again"
            );
            self.resolve_again = true;
        }
        let checks = self_test::identities(guard)?;
        for check in checks.iter().filter(|c| !c.passed) {
            error!("identity mismatch, objects on this filesystem are not protected: {check}");
        }
        self.published.identities = checks;
        self.published.netfilter = Some(guard.netfilter_status());
        self.assess(guard);
        // After the start, a change of state must show at once.
        if self.tables_generation > 1 {
            self.publish();
        }
        Ok(())
    }

    /// The state and its reason, from the self-test, the last proof, the identity checks
    /// and the mode the kernel is in (the guard's, and the installed rules').
    pub(super) fn assess(&mut self, guard: &Guard) {
        let (state, reason) = assess(
            Modes::of(guard),
            &guard.mechanism_summary(),
            &self.not_proven,
            self.published.proof.as_ref(),
            &self.published.identities,
        );
        self.published.state = state;
        self.published.reason = reason;
    }

    /// Writes the notices that are due, or all of them (at the stop).
    pub(super) fn write_notices(&mut self, all: bool) {
        let Some(notices) = &mut self.notices else {
            return;
        };
        let now = std::time::Instant::now();
        let until = if all { now + notice::QUIET } else { now };
        for n in notices.take_due(until) {
            if !notice::write(n.tty, &n.text) && !all {
                notices.busy(n, now);
            }
        }
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

    /// Moves the kernel's count of hook calls it skipped the guard's programs for into
    /// the published counters, the log and the audit log (`runs-skipped`). Only fmod_ret
    /// programs are skipped so, when one is already running on the CPU: on a preemptible
    /// kernel, while the task running it is preempted. Those operations went unjudged.
    pub(super) fn account_skipped_runs(&mut self) {
        let Ok(usage) = usage::of_process(std::process::id()) else {
            return;
        };
        let skipped = usage.skipped_runs();
        if skipped > self.published.events.not_judged {
            let new = skipped - self.published.events.not_judged;
            let programs: Vec<String> = usage
                .programs
                .iter()
                .filter(|p| p.recursion_misses > 0)
                .map(|p| format!("{} {}", p.name, p.recursion_misses))
                .collect();
            let note = format!(
                "the kernel skipped the guard's programs {new} times, on a CPU where one was \
                 already running; those operations were not judged (in total: {})",
                programs.join(", ")
            );
            warn!("{note}");
            self.trail.notice("runs-skipped", &note);
            self.published.events.not_judged = skipped;
        }
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

/// The mode the kernel is in: the guard's as a whole (`--mode`, the programs' global)
/// and each installed rule's (the policy's `mode`, per rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Modes {
    guard: Mode,
    /// The policy's rules in the maps, and how many of them only report.
    rules: usize,
    audit_rules: usize,
}

impl Modes {
    fn of(guard: &Guard) -> Self {
        let rules = &guard.installed().rules;
        Self {
            guard: guard.mode(),
            rules: rules.len(),
            audit_rules: rules.values().filter(|r| !r.enforces()).count(),
        }
    }

    /// Whether any match is refused at all.
    fn enforces(self) -> bool {
        self.guard == Mode::Enforce && (self.rules == 0 || self.audit_rules < self.rules)
    }
}

/// The guard's state and its reason. Never "enforcing" while the start's self-test did
/// not prove enforcement (`not_proven` says why), while the last proof failed, while the
/// kernel cannot match objects the policy protects (a failed identity check), or while
/// every rule the kernel holds only reports.
fn assess(
    modes: Modes,
    mechanism: &str,
    not_proven: &str,
    proof: Option<&Proof>,
    identities: &[IdentityCheck],
) -> (GuardState, String) {
    let self_tested = not_proven.is_empty();
    let proof_failed = proof.filter(|p| !p.passed);
    let mismatched: Vec<String> = identities
        .iter()
        .filter(|c| !c.passed)
        .map(IdentityCheck::to_string)
        .collect();
    let proven = self_tested && proof_failed.is_none() && mismatched.is_empty();
    let state = match (modes.enforces(), proven) {
        (_, false) => GuardState::Degraded,
        (true, true) => GuardState::Enforcing,
        (false, true) => GuardState::Auditing,
    };
    let reason = if !self_tested {
        not_proven.to_owned()
    } else if let Some(p) = proof_failed {
        format!(
            "{mechanism}; the proof at {} failed, enforcement has stopped: {}",
            p.at, p.detail
        )
    } else if !mismatched.is_empty() {
        format!(
            "{mechanism}; the kernel does not match the objects rtguard resolved on {} \
             filesystem(s): {}",
            mismatched.len(),
            mismatched.join("; ")
        )
    } else {
        let proven = "self-test passed";
        match state {
            GuardState::Enforcing if modes.audit_rules > 0 => format!(
                "{mechanism}; {proven}; {} of {} rules in audit mode: their matches are \
                 reported, not refused",
                modes.audit_rules, modes.rules
            ),
            GuardState::Enforcing => format!("{mechanism}; {proven}"),
            GuardState::Auditing if modes.guard == Mode::Audit => {
                format!("{mechanism}; audit mode: matches are reported, not refused")
            }
            GuardState::Auditing => format!(
                "{mechanism}; the policy is in audit mode (all {} rules): matches are \
                 reported, not refused",
                modes.rules
            ),
            GuardState::Degraded => "enforcement not proven".to_owned(),
        }
    };
    (state, reason)
}

/// Attached LSM programs grouped by layer, as `rtguard status` lists them.
pub(super) fn layers(attached: &[&'static str]) -> Vec<(String, Vec<String>)> {
    let layer_of = |hook: &str| match hook {
        "bprm_check_security" => "exec",
        "task_kill" | "ptrace_access_check" => "process",
        "netlink_send" => "netfilter",
        _ => "file",
    };
    ["file", "exec", "process", "netfilter"]
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

#[cfg(test)]
mod tests {
    use super::*;

    const MECHANISM: &str = "BPF LSM";

    fn modes(guard: Mode) -> Modes {
        Modes {
            guard,
            rules: 2,
            audit_rules: 0,
        }
    }

    fn proof(passed: bool) -> Proof {
        Proof {
            at: "2026-11-29T21:00:00Z".to_owned(),
            passed,
            detail: if passed {
                "file, exec, process layer canaries refused and reported".to_owned()
            } else {
                "file layer: unlink of the canary succeeded; kernel event: none".to_owned()
            },
            interval_secs: 60,
        }
    }

    fn check(path: &str, kernel: Option<&str>) -> IdentityCheck {
        IdentityCheck {
            path: path.to_owned(),
            resolved: "254:1/1311".to_owned(),
            kernel: kernel.map(str::to_owned),
            passed: kernel == Some("254:1/1311"),
        }
    }

    #[test]
    fn proven_enforcement_is_enforcing_and_audit_mode_says_so() {
        let proven = [check("/usr/bin/containerd", Some("254:1/1311"))];
        assert_eq!(
            assess(modes(Mode::Enforce), MECHANISM, "", None, &proven),
            (
                GuardState::Enforcing,
                "BPF LSM; self-test passed".to_owned()
            )
        );
        assert_eq!(
            assess(modes(Mode::Audit), MECHANISM, "", None, &proven),
            (
                GuardState::Auditing,
                "BPF LSM; audit mode: matches are reported, not refused".to_owned()
            )
        );
    }

    #[test]
    fn a_failed_self_test_is_degraded_with_its_reason_whatever_the_identities() {
        let (state, reason) = assess(
            modes(Mode::Enforce),
            MECHANISM,
            "self-test failed for the file layer(s)",
            None,
            &[check("/usr/bin/containerd", Some("254:1/1311"))],
        );
        assert_eq!(state, GuardState::Degraded);
        assert_eq!(reason, "self-test failed for the file layer(s)");
    }

    #[test]
    fn an_identity_mismatch_is_degraded_and_names_the_object() {
        let (state, reason) = assess(
            modes(Mode::Enforce),
            MECHANISM,
            "",
            None,
            &[
                check("/usr/bin/containerd", Some("254:1/1311")),
                check("/var/lib/docker", Some("0:52/256")),
            ],
        );
        assert_eq!(state, GuardState::Degraded);
        assert_eq!(
            reason,
            "BPF LSM; the kernel does not match the objects rtguard resolved on 1 \
             filesystem(s): /var/lib/docker: resolved 254:1/1311, kernel 0:52/256"
        );
        let (state, _) = assess(
            modes(Mode::Audit),
            MECHANISM,
            "",
            None,
            &[check("/x", None)],
        );
        assert_eq!(state, GuardState::Degraded, "audit mode is no excuse");
    }

    #[test]
    fn a_failed_proof_is_degraded_with_its_time_and_reason_until_one_passes() {
        let proven = [check("/usr/bin/containerd", Some("254:1/1311"))];
        let (state, reason) = assess(
            modes(Mode::Enforce),
            MECHANISM,
            "",
            Some(&proof(false)),
            &proven,
        );
        assert_eq!(state, GuardState::Degraded);
        assert_eq!(
            reason,
            "BPF LSM; the proof at 2026-11-29T21:00:00Z failed, enforcement has stopped: \
             file layer: unlink of the canary succeeded; kernel event: none"
        );
        let (state, _) = assess(
            modes(Mode::Audit),
            MECHANISM,
            "",
            Some(&proof(false)),
            &proven,
        );
        assert_eq!(state, GuardState::Degraded, "audit mode is no excuse");
        let (state, _) = assess(
            modes(Mode::Enforce),
            MECHANISM,
            "",
            Some(&proof(true)),
            &proven,
        );
        assert_eq!(state, GuardState::Enforcing);
    }

    #[test]
    fn the_policy_rules_modes_are_the_kernels_mode() {
        let all_audit = Modes {
            guard: Mode::Enforce,
            rules: 3,
            audit_rules: 3,
        };
        assert_eq!(
            assess(all_audit, MECHANISM, "", Some(&proof(true)), &[]),
            (
                GuardState::Auditing,
                "BPF LSM; the policy is in audit mode (all 3 rules): matches are reported, \
                 not refused"
                    .to_owned()
            )
        );
        let mixed = Modes {
            audit_rules: 1,
            ..all_audit
        };
        assert_eq!(
            assess(mixed, MECHANISM, "", Some(&proof(true)), &[]),
            (
                GuardState::Enforcing,
                "BPF LSM; self-test passed; 1 of 3 rules in audit mode: their matches are \
                 reported, not refused"
                    .to_owned()
            )
        );
    }

    #[test]
    fn attached_hooks_are_grouped_by_layer() {
        let got = layers(&[
            "path_unlink",
            "bprm_check_security",
            "task_kill",
            "file_open",
            "netlink_send",
        ]);
        assert_eq!(
            got,
            [
                (
                    "file".to_owned(),
                    vec!["path_unlink".to_owned(), "file_open".to_owned()]
                ),
                ("exec".to_owned(), vec!["bprm_check_security".to_owned()]),
                ("process".to_owned(), vec!["task_kill".to_owned()]),
                ("netfilter".to_owned(), vec!["netlink_send".to_owned()]),
            ]
        );
    }
}
